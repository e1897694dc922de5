// The one list of kernels: each name maps to its WGSL file in src/shaders. Kernels are
// reflected on first use and shared by every engine; pipelines are cached per engine.
import { Kernel } from './kernel.js';
import adam from '../shaders/adam.wgsl';
import biasAdd from '../shaders/bias_add.wgsl';
import binary from '../shaders/binary.wgsl';
import broadcast from '../shaders/broadcast.wgsl';
import copyBlock from '../shaders/copy_block.wgsl';
import dropout from '../shaders/dropout.wgsl';
import fill from '../shaders/fill.wgsl';
import matmul from '../shaders/matmul.wgsl';
import reduce from '../shaders/reduce.wgsl';
import sgd from '../shaders/sgd.wgsl';
import softmaxCrossEntropy from '../shaders/softmax_cross_entropy.wgsl';
import softmaxCrossEntropyBackward from '../shaders/softmax_cross_entropy_backward.wgsl';
import unary from '../shaders/unary.wgsl';
import unaryBackward from '../shaders/unary_backward.wgsl';

const SOURCES = {
  adam,
  bias_add: biasAdd,
  binary,
  broadcast,
  copy_block: copyBlock,
  dropout,
  fill,
  matmul,
  reduce,
  sgd,
  softmax_cross_entropy: softmaxCrossEntropy,
  softmax_cross_entropy_backward: softmaxCrossEntropyBackward,
  unary,
  unary_backward: unaryBackward,
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
