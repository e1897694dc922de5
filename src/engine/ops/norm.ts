// Normalisation: BatchNorm over the channel axis 1 of [N, C] or [N, C, H, W] (statistics per
// channel over every other axis) and LayerNorm over the last axis.
//
// BatchNorm kernels (x viewed as [N, C, S], S = H*W, 1 for [N, C]):
//   batchnorm_stats           one workgroup per channel: batch mean and biased variance
//   batchnorm_running         running averages updated in place (PyTorch semantics, no readback)
//   batchnorm                 elementwise normalise + affine, with batch or running statistics
//   batchnorm_backward_stats  one workgroup per channel: sum(dy) (= d beta), sum(dy * xhat) (= d gamma)
//   batchnorm_backward        elementwise input gradient
// LayerNorm kernels: layernorm (workgroup per row, also saves mean and rstd per row),
// layernorm_backward (workgroup per row), layernorm_backward_gamma (invocation per column);
// d beta is the reduce kernel's column sum.
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, output } from './check.js';
import { sum } from './reduce.js';

export interface BatchNormOptions {
  /**
   * true: normalise with the batch mean and biased batch variance (and update the running
   * averages when they are given); false: normalise with the running averages (inference).
   */
  training: boolean;
  /** [C] running mean: read in inference mode, updated in place in training mode. */
  runningMean?: Tensor;
  /** [C] running (unbiased) variance: read in inference mode, updated in place in training mode. */
  runningVar?: Tensor;
  /** Weight of the new batch statistic in the running averages (PyTorch's convention); default 0.1. */
  momentum?: number;
  /** Added to the variance before the square root; default 1e-5. */
  eps?: number;
}

/** One workgroup per item, over a 2-D grid when there are more than the per-dimension limit. */
function itemGrid(x: Tensor, items: number): [number, number] {
  const maxPerDim = x.engine.limits.maxComputeWorkgroupsPerDimension;
  return [Math.min(items, maxPerDim), Math.ceil(items / maxPerDim)];
}

function checkEps(op: string, eps: number): void {
  if (!(eps > 0) || !Number.isFinite(eps)) throw new Error(`${op}: eps ${eps} must be a positive number`);
}

function checkChannelVector(op: string, x: Tensor, t: Tensor, what: string, channels: number, axis: string): void {
  if (t.rank !== 1 || t.shape[0] !== channels) {
    throw new Error(`${op}: ${what} ${t.name} has shape ${shapeString(t.shape)}, but ${x.name} ${shapeString(x.shape)} has ${channels} ${axis}; expected [${channels}]`);
  }
}

/**
 * BatchNorm of x [N, C] or [N, C, H, W] (any [N, C, ...]) with per-channel gamma and beta [C].
 * Training mode normalises with the batch statistics over N (and H, W) and, when runningMean and
 * runningVar are given, updates them on the GPU: running = (1 - momentum) * running + momentum *
 * batch statistic, with the unbiased batch variance for runningVar (PyTorch). Inference mode
 * normalises with runningMean and runningVar, which are constants of the graph.
 */
export function batchNorm(x: Tensor, gamma: Tensor, beta: Tensor, options: BatchNormOptions): Tensor {
  const op = 'batchNorm';
  const { training, runningMean, runningVar } = options;
  const momentum = options.momentum ?? 0.1;
  const eps = options.eps ?? 1e-5;
  alive(op, x, gamma, beta, ...(runningMean ? [runningMean] : []), ...(runningVar ? [runningVar] : []));
  if (x.rank < 2) throw new Error(`${op}: ${x.name} has shape ${shapeString(x.shape)}; expected [N, C] or [N, C, H, W]`);
  const N = x.shape[0]!;
  const C = x.shape[1]!;
  const S = x.shape.slice(2).reduce((a, b) => a * b, 1);
  const count = N * S;
  checkChannelVector(op, x, gamma, 'gamma (weight)', C, 'channels (axis 1)');
  checkChannelVector(op, x, beta, 'beta (bias)', C, 'channels (axis 1)');
  if (runningMean) checkChannelVector(op, x, runningMean, 'runningMean', C, 'channels (axis 1)');
  if (runningVar) checkChannelVector(op, x, runningVar, 'runningVar', C, 'channels (axis 1)');
  if (!runningMean !== !runningVar) throw new Error(`${op}: give both runningMean and runningVar, or neither`);
  checkEps(op, eps);
  if (!(momentum >= 0 && momentum <= 1)) throw new Error(`${op}: momentum ${momentum} must be in [0, 1]`);
  const engine = x.engine;
  const n = x.size;

  let mean: Tensor;
  let variance: Tensor;
  if (training) {
    if (count < 2) {
      throw new Error(`${op}: training mode needs more than one value per channel to compute batch statistics; ${x.name} has shape ${shapeString(x.shape)}`);
    }
    mean = engine.empty([C], `${op}.mean`);
    variance = engine.empty([C], `${op}.variance`);
    engine.dispatch('batchnorm_stats', { bindings: { x, mean, variance }, uniforms: { channels: C, spatial: S, count }, workgroups: itemGrid(x, C) });
    if (runningMean && runningVar) {
      engine.dispatch('batchnorm_running', {
        bindings: { mean, variance, running_mean: runningMean, running_var: runningVar },
        uniforms: { channels: C, momentum, unbias: count / (count - 1) },
        threads: C,
      });
    }
  } else {
    if (!runningMean || !runningVar) throw new Error(`${op}: inference mode (training: false) needs runningMean and runningVar`);
    mean = runningMean;
    variance = runningVar;
  }

  const out = engine.empty(x.shape, op);
  if (n > 0) {
    engine.dispatch('batchnorm', { bindings: { x, mean, variance, gamma, beta, out }, uniforms: { n, channels: C, spatial: S, eps }, threads: n });
  }

  const statsUniforms = { channels: C, spatial: S, count, eps };
  /** One backward-statistics dispatch: WHAT 0 gives [sum(dy); sum(dy * xhat)] as [2, C], 1 d beta, 2 d gamma. */
  const backwardStats = (dy: Tensor, what: 0 | 1 | 2, name: string, into?: Tensor): Tensor => {
    const t = output(op, engine, what === 0 ? [2, C] : [C], name, into);
    engine.dispatch('batchnorm_backward_stats', { bindings: { x, dy, mean, variance, out: t }, uniforms: statsUniforms, constants: { WHAT: what }, workgroups: itemGrid(x, C) });
    return t;
  };

  return record(
    out,
    op,
    [x, gamma, beta],
    [
      (dy) => {
        const dx = engine.empty(x.shape, `d(${x.name})`);
        if (n === 0) return dx;
        // In inference mode the statistics are constants: dx is the affine scale of dy alone, and
        // `sums` is not read (mean stands in for the binding).
        const sums = training ? backwardStats(dy, 0, `${op}.sums`) : mean;
        engine.dispatch('batchnorm_backward', {
          bindings: { x, dy, mean, variance, gamma, sums, dx },
          uniforms: { n, channels: C, spatial: S, eps, inv_count: 1 / count },
          constants: { TRAINING: training },
          threads: n,
        });
        if (training) sums.dispose();
        return dx;
      },
      (dy, into) => backwardStats(dy, 2, `d(${gamma.name})`, into),
      (dy, into) => backwardStats(dy, 1, `d(${beta.name})`, into),
    ],
    [mean, variance],
  );
}

/**
 * LayerNorm over the last axis of x [..., D] with gamma and beta [D]: each row of D values is
 * normalised by its own mean and biased variance (plus eps), then scaled and shifted.
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  alive(op, x, gamma, beta);
  if (x.rank < 1) throw new Error(`${op}: ${x.name} has shape ${shapeString(x.shape)}; expected at least one axis`);
  const D = x.shape[x.rank - 1]!;
  checkChannelVector(op, x, gamma, 'gamma (weight)', D, 'features (last axis)');
  checkChannelVector(op, x, beta, 'beta (bias)', D, 'features (last axis)');
  checkEps(op, eps);
  if (D === 0) throw new Error(`${op}: ${x.name} ${shapeString(x.shape)} has rows of length 0`);
  const engine = x.engine;
  const rows = x.size / D;
  const out = engine.empty(x.shape, op);
  const mean = engine.empty([rows], `${op}.mean`);
  const rstd = engine.empty([rows], `${op}.rstd`);
  if (rows > 0) {
    engine.dispatch('layernorm', { bindings: { x, gamma, beta, out, mean, rstd }, uniforms: { rows, cols: D, eps }, workgroups: itemGrid(x, rows) });
  }
  return record(out, op, [x, gamma, beta], [
    (dy) => {
      const dx = engine.empty(x.shape, `d(${x.name})`);
      if (rows > 0) engine.dispatch('layernorm_backward', { bindings: { x, dy, gamma, mean, rstd, dx }, uniforms: { rows, cols: D }, workgroups: itemGrid(x, rows) });
      return dx;
    },
    (dy, into) => {
      const dgamma = output(op, engine, [D], `d(${gamma.name})`, into);
      engine.dispatch('layernorm_backward_gamma', { bindings: { x, dy, mean, rstd, dgamma }, uniforms: { rows, cols: D }, threads: D });
      return dgamma;
    },
    (dy, into) => {
      const rowsView = engine.view(dy, [rows, D]);
      const dbeta = sum(rowsView, 0, into);
      rowsView.dispose();
      return dbeta;
    },
  ], [mean, rstd]);
}
