// Layers: Dense, Conv2d, pooling, normalisation, Embedding, activations, Dropout, Flatten,
// Reshape. Each is a Module (module.ts) listing its parameters and buffers under local names;
// containers (containers.ts) put them together.
import type { Engine } from './engine.js';
import { Module } from './module.js';
import {
  avgPool2d,
  batchNorm,
  checkIndices,
  conv2d,
  dropout,
  embedding,
  fusable,
  globalAvgPool,
  layerNorm,
  linear,
  maxPool2d,
  reshape,
  unary,
  type FusedActivation,
  type UnaryOp,
} from './ops/index.js';
import { randomNormal, randomUniform } from './random.js';
import type { Parameter } from './parameters.js';
import type { Tensor } from './tensor.js';

/** A layer that can apply the activation after it in its own kernel's epilogue (Sequential uses this). */
export interface Fusing {
  canFuse(activation: Activation): boolean;
  forwardFused(x: Tensor, activation: Activation | null): Tensor;
}

export function isFusing(m: object): m is Module & Fusing {
  return 'canFuse' in m && 'forwardFused' in m;
}

export interface DenseOptions {
  bias?: boolean;
  /** Seed of the initial weights; by default the engine's next seed. */
  seed?: number;
}

/**
 * y = x W^T + b, with W stored [out, in] as PyTorch's nn.Linear (so saved weights line up),
 * initialised as PyTorch does: uniform in +-1/sqrt(in).
 */
export class Dense extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(
    engine: Engine,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: DenseOptions = {},
  ) {
    super();
    if (!Number.isInteger(inFeatures) || !Number.isInteger(outFeatures) || inFeatures <= 0 || outFeatures <= 0) {
      throw new Error(`Dense: features must be positive integers, got in=${inFeatures} out=${outFeatures}`);
    }
    const seed = options.seed ?? engine.nextSeed();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = engine.parameter(randomUniform(inFeatures * outFeatures, seed, -bound, bound), [outFeatures, inFeatures], 'weight');
    this.bias = options.bias === false ? null : engine.parameter(randomUniform(outFeatures, seed + 1, -bound, bound), [outFeatures], 'bias');
  }

  override ownParameters(): [string, Parameter][] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  forward(x: Tensor): Tensor {
    return this.forwardFused(x, null);
  }

  canFuse(activation: Activation): boolean {
    return fusable(activation.op, activation.alpha);
  }

  forwardFused(x: Tensor, activation: Activation | null): Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.inFeatures) {
      throw new Error(`Dense(${this.inFeatures} -> ${this.outFeatures}): input ${x.name} has shape [${x.shape.join(',')}], expected [batch, ${this.inFeatures}]`);
    }
    return linear(x, this.weight, this.bias, activation ? (activation.op as FusedActivation) : null, activation?.alpha);
  }
}

/** An elementwise activation as a layer. */
export class Activation extends Module {
  constructor(
    readonly op: UnaryOp,
    readonly alpha = 0,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return unary(this.op, x, this.alpha);
  }
}

export const ReLU = () => new Activation('relu');
export const LeakyReLU = (slope = 0.01) => new Activation('leaky_relu', slope);
export const GELU = () => new Activation('gelu');
export const Sigmoid = () => new Activation('sigmoid');
export const Tanh = () => new Activation('tanh');

export class Dropout extends Module {
  constructor(readonly rate: number) {
    super();
    if (!(rate >= 0 && rate < 1)) throw new Error(`Dropout: rate ${rate} must be in [0, 1)`);
  }

  forward(x: Tensor): Tensor {
    return this.training && this.rate > 0 ? dropout(x, this.rate) : x;
  }
}

/** [batch, ...] to [batch, features], as a view. */
export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return reshape(x, [x.shape[0] ?? 1, -1]);
  }
}

// ---------------------------------------------------------------- convolutional layers

export interface Conv2dLayerOptions {
  stride?: number | readonly [number, number];
  padding?: number | readonly [number, number];
  bias?: boolean;
  /** Seed of the initial weights; by default the engine's next seed. */
  seed?: number;
}

/**
 * 2-D convolution over [N, inC, H, W], weight [outC, inC, k, k] as PyTorch's nn.Conv2d,
 * initialised as PyTorch does: uniform in +-1/sqrt(inC*k*k) (weight and bias).
 */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly kernelSize: [number, number];

  constructor(
    engine: Engine,
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: number | readonly [number, number],
    readonly options: Conv2dLayerOptions = {},
  ) {
    super();
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    if (![inChannels, outChannels, kh, kw].every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`Conv2d: channels and kernel size must be positive integers, got in=${inChannels} out=${outChannels} kernel=${JSON.stringify(kernelSize)}`);
    }
    this.kernelSize = [kh, kw];
    const seed = options.seed ?? engine.nextSeed();
    const fanIn = inChannels * kh * kw;
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = engine.parameter(randomUniform(outChannels * fanIn, seed, -bound, bound), [outChannels, inChannels, kh, kw], 'weight');
    this.bias = options.bias === false ? null : engine.parameter(randomUniform(outChannels, seed + 1, -bound, bound), [outChannels], 'bias');
  }

  override ownParameters(): [string, Parameter][] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  forward(x: Tensor): Tensor {
    return this.forwardFused(x, null);
  }

  canFuse(activation: Activation): boolean {
    return fusable(activation.op, activation.alpha);
  }

  forwardFused(x: Tensor, activation: Activation | null): Tensor {
    const fused = activation ? { activation: activation.op as FusedActivation, slope: activation.alpha } : {};
    return conv2d(x, this.weight, this.bias, { stride: this.options.stride, padding: this.options.padding, ...fused });
  }
}

/** Max pooling with a k x k window (stride defaults to k). */
export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: number,
    readonly stride: number = kernelSize,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, { stride: this.stride });
  }
}

/** Average pooling with a k x k window (stride defaults to k). */
export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: number,
    readonly stride: number = kernelSize,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, { stride: this.stride });
  }
}

/** Mean over H and W: [N, C, H, W] to [N, C]. */
export class GlobalAvgPool extends Module {
  forward(x: Tensor): Tensor {
    return globalAvgPool(x);
  }
}

/** [batch, ...] to [batch, ...shape], as a view (e.g. Reshape([1, 28, 28]) turns rows of 784 into images). */
export class Reshape extends Module {
  constructor(readonly shape: readonly number[]) {
    super();
  }

  forward(x: Tensor): Tensor {
    return reshape(x, [x.shape[0] ?? 1, ...this.shape]);
  }
}

// ---------------------------------------------------------------- normalisation and embedding layers

export interface BatchNormLayerOptions {
  /** Weight of each new batch statistic in the running averages (PyTorch's convention); default 0.1. */
  momentum?: number;
  /** Added to the variance before the square root; default 1e-5. */
  eps?: number;
  /** What the layer does in training mode when its parameters are frozen; see `frozenStatistics`. */
  frozenStatistics?: 'inference' | 'update';
}

/**
 * BatchNorm over the channels (axis 1) of [N, C] (after Dense) or [N, C, H, W] (after Conv2d),
 * as PyTorch's BatchNorm1d/2d: parameters `weight` (gamma, init 1) and `bias` (beta, init 0);
 * buffers `runningMean` (init 0) and `runningVar` (init 1), listed by `buffers()` as
 * `running_mean` and `running_var` (PyTorch's state-dict names). They are kept tensors, not
 * parameters: no optimizer or freezing touches them, and `saveWeights` (parameters only) does
 * not save them.
 *
 * In training mode the layer normalises with the batch mean and biased batch variance and
 * updates the running averages on the GPU with the unbiased variance; in eval mode it always
 * normalises with the running averages.
 */
export class BatchNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  momentum: number;
  eps: number;
  /**
   * Frozen BatchNorm policy: what a layer in training mode does when its parameters (weight and
   * bias both) are frozen.
   * - 'inference' (the default, as Keras): it behaves as in inference mode, normalising with the
   *   running averages and leaving them exactly as they are, so a frozen pretrained backbone
   *   keeps its statistics while the layers above it are fine-tuned.
   * - 'update' (as fast.ai, and PyTorch's train mode): it keeps normalising with batch
   *   statistics and updating the running averages although gamma and beta stay fixed.
   */
  frozenStatistics: 'inference' | 'update';
  /**
   * Normalise with the running averages and leave them as they are in training mode too, even
   * with trainable parameters (default false): Keras's advice for fine-tuning a pretrained model
   * on little data, where batch statistics of a few new examples would shift every feature.
   */
  fixedStatistics = false;

  constructor(
    engine: Engine,
    readonly channels: number,
    options: BatchNormLayerOptions = {},
  ) {
    super();
    if (!Number.isInteger(channels) || channels <= 0) throw new Error(`BatchNorm: channels must be a positive integer, got ${channels}`);
    this.momentum = options.momentum ?? 0.1;
    this.eps = options.eps ?? 1e-5;
    this.frozenStatistics = options.frozenStatistics ?? 'inference';
    this.weight = engine.parameter(new Float32Array(channels).fill(1), [channels], 'weight');
    this.bias = engine.parameter(new Float32Array(channels), [channels], 'bias');
    this.runningMean = engine.keep(engine.tensor(new Float32Array(channels), [channels], 'running_mean'));
    this.runningVar = engine.keep(engine.tensor(new Float32Array(channels).fill(1), [channels], 'running_var'));
  }

  override ownParameters(): [string, Parameter][] {
    return [['weight', this.weight], ['bias', this.bias]];
  }

  override ownBuffers(): [string, Tensor][] {
    return [['running_mean', this.runningMean], ['running_var', this.runningVar]];
  }

  /** Whether this forward uses (and updates) batch statistics, given the mode and the frozen policy. */
  usesBatchStatistics(): boolean {
    if (!this.training || this.fixedStatistics) return false;
    const frozen = this.weight.frozen && this.bias.frozen;
    return !(frozen && this.frozenStatistics === 'inference');
  }

  forward(x: Tensor): Tensor {
    if (x.rank < 2 || x.shape[1] !== this.channels) {
      throw new Error(`BatchNorm(${this.channels}): input ${x.name} has shape [${x.shape.join(',')}], expected [batch, ${this.channels}] or [batch, ${this.channels}, H, W]`);
    }
    return batchNorm(x, this.weight, this.bias, {
      training: this.usesBatchStatistics(),
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

/** LayerNorm over the last axis (rows of `dim` values): parameters `weight` (init 1) and `bias` (init 0). */
export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(
    engine: Engine,
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    if (!Number.isInteger(dim) || dim <= 0) throw new Error(`LayerNorm: dim must be a positive integer, got ${dim}`);
    this.weight = engine.parameter(new Float32Array(dim).fill(1), [dim], 'weight');
    this.bias = engine.parameter(new Float32Array(dim), [dim], 'bias');
  }

  override ownParameters(): [string, Parameter][] {
    return [['weight', this.weight], ['bias', this.bias]];
  }

  forward(x: Tensor): Tensor {
    if (x.rank < 1 || x.shape[x.rank - 1] !== this.dim) {
      throw new Error(`LayerNorm(${this.dim}): input ${x.name} has shape [${x.shape.join(',')}], expected [..., ${this.dim}]`);
    }
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export interface EmbeddingOptions {
  /** Seed of the initial table; by default the engine's next seed. */
  seed?: number;
  /** Standard deviation of the initial table (default 1, as nn.Embedding). */
  std?: number;
}

/**
 * A lookup table [vocab, dim] (`weight`, initialised normal with std 1 as PyTorch's
 * nn.Embedding). forward(indices) takes an f32 tensor of any shape whose values must be integers
 * in [0, vocab) and gives [..., dim]. The forward cannot check the values without a readback:
 * make index tensors with `indices()`, which checks them on the CPU. (An index out of range or
 * not an integer gives a row of NaN, which makes the loss NaN, and no gradient.)
 */
export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(
    readonly engine: Engine,
    readonly vocab: number,
    readonly dim: number,
    options: EmbeddingOptions = {},
  ) {
    super();
    if (!Number.isInteger(vocab) || !Number.isInteger(dim) || vocab <= 0 || dim <= 0) {
      throw new Error(`Embedding: vocab and dim must be positive integers, got vocab=${vocab} dim=${dim}`);
    }
    this.weight = engine.parameter(randomNormal(vocab * dim, options.seed ?? engine.nextSeed(), 0, options.std ?? 1), [vocab, dim], 'weight');
  }

  override ownParameters(): [string, Parameter][] {
    return [['weight', this.weight]];
  }

  /** An index tensor for this table, checked on the CPU: every value an integer in [0, vocab). */
  indices(values: ArrayLike<number>, shape: readonly number[] = [values.length], name = 'indices'): Tensor {
    checkIndices(`Embedding(${this.vocab}, ${this.dim}).indices`, values, this.vocab);
    return this.engine.tensor(values, shape, name);
  }

  forward(indices: Tensor): Tensor {
    return embedding(indices, this.weight);
  }
}

export interface TiedEmbeddingOptions extends EmbeddingOptions {
  /** The size of the hidden states logits() takes; a projection to dim when it differs (default dim). */
  hidden?: number;
  /** An output bias [vocab] (default true). */
  bias?: boolean;
}

/**
 * One table E [vocab, dim] for a language model's input and output (tied embeddings, as the
 * keyboard models of Hard et al. 2018 use to stay small): forward(indices) = E[indices], and
 * logits(h) = h P^T E^T + b for h [N, hidden], with a projection P [dim, hidden] (a Dense layer
 * without bias, `projection`, so that LoRA can adapt it) only when hidden != dim. The table gets both
 * uses' gradients. Its default initial std is 1/sqrt(dim), so that the first logits are O(1).
 */
export class TiedEmbedding extends Embedding {
  readonly hidden: number;
  readonly projection: Dense | null;
  readonly bias: Parameter | null;

  constructor(engine: Engine, vocab: number, dim: number, options: TiedEmbeddingOptions = {}) {
    const seed = options.seed ?? engine.nextSeed();
    super(engine, vocab, dim, { seed, std: options.std ?? 1 / Math.sqrt(dim) });
    this.hidden = options.hidden ?? dim;
    if (!Number.isInteger(this.hidden) || this.hidden <= 0) throw new Error(`TiedEmbedding(${vocab}, ${dim}): hidden must be a positive integer, got ${this.hidden}`);
    this.projection = this.hidden === dim ? null : new Dense(engine, this.hidden, dim, { bias: false, seed: seed + 1 });
    this.bias = options.bias === false ? null : engine.parameter(new Float32Array(vocab), [vocab], 'bias');
  }

  override ownParameters(): [string, Parameter][] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  override children(): [string, Module][] {
    return this.projection ? [['projection', this.projection]] : [];
  }

  /** Next-token logits [N, vocab] from hidden states h [N, hidden]. */
  logits(h: Tensor): Tensor {
    if (h.rank !== 2 || h.shape[1] !== this.hidden) {
      throw new Error(`TiedEmbedding(${this.vocab}, ${this.dim}).logits: h ${h.name} has shape [${h.shape.join(',')}], expected [N, ${this.hidden}]`);
    }
    return linear(this.projection ? this.projection.forward(h) : h, this.weight, this.bias);
  }
}
