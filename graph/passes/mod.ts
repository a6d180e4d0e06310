/**
 * Plan-time graph passes: rewrites of a whole training graph, run after
 * `grad` and before planning.
 *
 * @module
 */
export { fuseGraph } from "./fuse.ts";
export { CHAIN_OPS, chainGroups, fuseChains } from "./chains.ts";
