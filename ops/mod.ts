/**
 * Every op, registered on import (workers import this to rebuild graphs from
 * JSON), and their public functions.
 *
 * @module
 */
export * from "./add.ts";
export * from "./avg_pool2d.ts";
export * from "./batch_norm.ts";
export * from "./batch_sum.ts";
export * from "./bias_relu.ts";
export * from "./bias_relu_pool.ts";
export * from "./bias_relu_pool_backward.ts";
export * from "./bce_with_logits.ts";
export * from "./concat.ts";
export * from "./conv2d.ts";
export * from "./conv2d_backward_filter.ts";
export * from "./conv2d_backward_input.ts";
export * from "./conv2d_relu_pool.ts";
export * from "./conv2d_relu_pool_backward.ts";
export * from "./cross_entropy.ts";
export * from "./div.ts";
export * from "./dropout.ts";
export * from "./element_count.ts";
export * from "./elementwise_chain.ts";
export * from "./exp.ts";
export * from "./expand_as.ts";
export * from "./fill.ts";
export * from "./gelu.ts";
export * from "./global_avg_pool2d.ts";
export * from "./layer_norm.ts";
export * from "./leaky_relu.ts";
export * from "./linear.ts";
export * from "./log.ts";
export * from "./log_softmax.ts";
export * from "./matmul.ts";
export * from "./max_pool2d.ts";
export * from "./mean.ts";
export * from "./mse_loss.ts";
export * from "./mul.ts";
export * from "./nll_loss.ts";
export * from "./packed_first.ts";
export * from "./pow.ts";
export * from "./relu.ts";
export * from "./relu_pool_bias_grad.ts";
export * from "./reshape.ts";
export * from "./scale.ts";
export * from "./sigmoid.ts";
export * from "./softmax.ts";
export * from "./sub.ts";
export * from "./sum.ts";
export * from "./take.ts";
export * from "./tanh.ts";
export * from "./training_select.ts";
export type { ReduceAttrs } from "./_reduce.ts";
