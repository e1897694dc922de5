// The one list of kernels: each name maps to its WGSL file in src/shaders. Kernels are
// reflected on first use and shared by every engine; pipelines are cached per engine.
import { Kernel } from './kernel.js';
import accuracy from '../shaders/accuracy.wgsl';
import adam from '../shaders/adam.wgsl';
import batchnorm from '../shaders/batchnorm.wgsl';
import batchnormBackward from '../shaders/batchnorm_backward.wgsl';
import batchnormBackwardStats from '../shaders/batchnorm_backward_stats.wgsl';
import batchnormRunning from '../shaders/batchnorm_running.wgsl';
import batchnormStats from '../shaders/batchnorm_stats.wgsl';
import biasAdd from '../shaders/bias_add.wgsl';
import binary from '../shaders/binary.wgsl';
import broadcast from '../shaders/broadcast.wgsl';
import clipToNormBackward from '../shaders/clip_to_norm_backward.wgsl';
import col2im from '../shaders/col2im.wgsl';
import conv2d from '../shaders/conv2d.wgsl';
import copyBlock from '../shaders/copy_block.wgsl';
import dequantize8 from '../shaders/dequantize8.wgsl';
import dropout from '../shaders/dropout.wgsl';
import embedding from '../shaders/embedding.wgsl';
import embeddingBackward from '../shaders/embedding_backward.wgsl';
import fill from '../shaders/fill.wgsl';
import flatAxpy from '../shaders/flat_axpy.wgsl';
import flatReduce from '../shaders/flat_reduce.wgsl';
import flatReduceFinish from '../shaders/flat_reduce_finish.wgsl';
import gaussianNoise from '../shaders/gaussian_noise.wgsl';
import gram from '../shaders/gram.wgsl';
import gramFinish from '../shaders/gram_finish.wgsl';
import gradStats from '../shaders/grad_stats.wgsl';
import layernorm from '../shaders/layernorm.wgsl';
import layernormBackward from '../shaders/layernorm_backward.wgsl';
import layernormBackwardGamma from '../shaders/layernorm_backward_gamma.wgsl';
import matmul from '../shaders/matmul.wgsl';
import matmulBlock8 from '../shaders/matmul_block8.wgsl';
import matmulSubgroup from '../shaders/matmul_subgroup.wgsl';
import matmulTiled from '../shaders/matmul_tiled.wgsl';
import mixture from '../shaders/mixture.wgsl';
import mixtureBackward from '../shaders/mixture_backward.wgsl';
import pool2d from '../shaders/pool2d.wgsl';
import pool2dBackward from '../shaders/pool2d_backward.wgsl';
import quantize8 from '../shaders/quantize8.wgsl';
import recurrent from '../shaders/recurrent.wgsl';
import recurrentBackward from '../shaders/recurrent_backward.wgsl';
import reduce from '../shaders/reduce.wgsl';
import serverOptimizer from '../shaders/server_optimizer.wgsl';
import sgd from '../shaders/sgd.wgsl';
import softmax from '../shaders/softmax.wgsl';
import softmaxBackward from '../shaders/softmax_backward.wgsl';
import softmaxCrossEntropy from '../shaders/softmax_cross_entropy.wgsl';
import softmaxCrossEntropyBackward from '../shaders/softmax_cross_entropy_backward.wgsl';
import softmaxCrossEntropyIndices from '../shaders/softmax_cross_entropy_indices.wgsl';
import softmaxCrossEntropyIndicesBackward from '../shaders/softmax_cross_entropy_indices_backward.wgsl';
import trimmedMean from '../shaders/trimmed_mean.wgsl';
import unary from '../shaders/unary.wgsl';
import unaryBackward from '../shaders/unary_backward.wgsl';
import weightedAverage from '../shaders/weighted_average.wgsl';
import weightedAverageBackward from '../shaders/weighted_average_backward.wgsl';

const SOURCES = {
  accuracy,
  adam,
  batchnorm,
  batchnorm_backward: batchnormBackward,
  batchnorm_backward_stats: batchnormBackwardStats,
  batchnorm_running: batchnormRunning,
  batchnorm_stats: batchnormStats,
  bias_add: biasAdd,
  binary,
  broadcast,
  clip_to_norm_backward: clipToNormBackward,
  col2im,
  conv2d,
  copy_block: copyBlock,
  dequantize8,
  dropout,
  embedding,
  embedding_backward: embeddingBackward,
  fill,
  flat_axpy: flatAxpy,
  flat_reduce: flatReduce,
  flat_reduce_finish: flatReduceFinish,
  gaussian_noise: gaussianNoise,
  grad_stats: gradStats,
  gram,
  gram_finish: gramFinish,
  layernorm,
  layernorm_backward: layernormBackward,
  layernorm_backward_gamma: layernormBackwardGamma,
  matmul,
  matmul_block8: matmulBlock8,
  matmul_subgroup: matmulSubgroup,
  matmul_tiled: matmulTiled,
  mixture,
  mixture_backward: mixtureBackward,
  pool2d,
  pool2d_backward: pool2dBackward,
  quantize8,
  recurrent,
  recurrent_backward: recurrentBackward,
  reduce,
  server_optimizer: serverOptimizer,
  sgd,
  softmax,
  softmax_backward: softmaxBackward,
  softmax_cross_entropy: softmaxCrossEntropy,
  softmax_cross_entropy_backward: softmaxCrossEntropyBackward,
  softmax_cross_entropy_indices: softmaxCrossEntropyIndices,
  softmax_cross_entropy_indices_backward: softmaxCrossEntropyIndicesBackward,
  trimmed_mean: trimmedMean,
  unary,
  unary_backward: unaryBackward,
  weighted_average: weightedAverage,
  weighted_average_backward: weightedAverageBackward,
} as const;

export type KernelName = keyof typeof SOURCES;

export const KERNEL_NAMES = Object.keys(SOURCES) as KernelName[];

const reflected = new Map<KernelName, Kernel>();

export function kernel(name: KernelName): Kernel {
  let k = reflected.get(name);
  if (!k) {
    const source = SOURCES[name];
    if (source === undefined) throw new Error(`no kernel named ${name}`);
    k = new Kernel(name, source);
    reflected.set(name, k);
  }
  return k;
}
