/**
 * Every op, registered on import (workers import this to rebuild graphs from
 * JSON), and their public functions.
 *
 * @module
 */
export * from "./add.ts";
export * from "./div.ts";
export * from "./expand_as.ts";
export * from "./fill.ts";
export * from "./linear.ts";
export * from "./matmul.ts";
export * from "./mean.ts";
export * from "./mul.ts";
export * from "./relu.ts";
export * from "./reshape.ts";
export * from "./scale.ts";
export * from "./sub.ts";
export * from "./sum.ts";
