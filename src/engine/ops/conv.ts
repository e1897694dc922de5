// 2-D convolution over NCHW tensors with a PyTorch-layout weight [outC, inC, kH, kW]: the
// forward is an implicit GEMM (src/shaders/conv2d.wgsl), the input gradient a gather
// (conv2d_backward_input.wgsl), the weight gradient a split reduction over output positions
// (conv2d_backward_weight.wgsl) and the bias gradient two sums. Input, weight and bias have
// separate gradient functions, so a frozen weight costs no weight-gradient kernel.
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { checkFused, UNARY_OPS, type FusedActivation } from './activation.js';
import { alive, output, rank } from './check.js';
import { epilogueGradient } from './elementwise.js';
import { sum } from './reduce.js';

export interface Conv2dOptions {
  /** Stride, one number for both axes or [vertical, horizontal]; default 1. */
  stride?: number | readonly [number, number];
  /** Zero padding on each side, one number for both axes or [vertical, horizontal]; default 0. */
  padding?: number | readonly [number, number];
  /** An activation applied in the same kernel's epilogue (one whose derivative follows from the output). */
  activation?: FusedActivation | null;
  /** leaky_relu's slope (positive); default 0.01. */
  slope?: number;
}

const WG = 64; // invocations per workgroup of the conv kernels (the forward's may be autotuned)

function pair(op: string, what: string, v: number | readonly [number, number] | undefined, fallback: number, min: number): [number, number] {
  const p: [number, number] = v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x) && x >= min)) throw new Error(`${op}: ${what} ${JSON.stringify(v)} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer or a pair of them`);
  return p;
}

/** Spreads `groups` workgroups over x and y past the per-dimension limit. */
function grid(x: Tensor, groups: number, z = 1): [number, number, number] {
  const max = x.engine.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1, z];
  return [max, Math.ceil(groups / max), z];
}

/**
 * y[n, oc, oh, ow] = bias[oc] + sum over ic, kh, kw of weight[oc, ic, kh, kw] * x[n, ic, oh*s - p + kh, ow*s - p + kw]
 * (zero outside x), for x [N, C, H, W] and weight [OC, C, KH, KW]; y is [N, OC, OH, OW] with
 * OH = floor((H + 2p - KH) / s) + 1.
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  alive(op, x, weight, ...(bias ? [bias] : []));
  rank(op, x, 4);
  rank(op, weight, 4);
  const [SH, SW] = pair(op, 'stride', options.stride, 1, 1);
  const [PH, PW] = pair(op, 'padding', options.padding, 0, 0);
  const activation = options.activation ?? null;
  const slope = options.slope ?? 0.01;
  checkFused(op, activation, slope);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [OC, WC, KH, KW] = weight.shape as [number, number, number, number];
  const describe = () => `input ${x.name} ${shapeString(x.shape)}, weight ${weight.name} ${shapeString(weight.shape)}${bias ? `, bias ${bias.name} ${shapeString(bias.shape)}` : ''}, stride [${SH},${SW}], padding [${PH},${PW}]`;
  if (WC !== C) throw new Error(`${op}: input has ${C} channels but the weight expects ${WC} (${describe()})`);
  if (OC === 0 || C === 0 || KH === 0 || KW === 0) throw new Error(`${op}: empty weight (${describe()})`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== OC)) throw new Error(`${op}: bias must have shape [${OC}] (${describe()})`);
  if (KH > H + 2 * PH || KW > W + 2 * PW) {
    throw new Error(`${op}: kernel ${KH}x${KW} is larger than the padded input ${H + 2 * PH}x${W + 2 * PW} (${describe()})`);
  }
  const OH = Math.floor((H + 2 * PH - KH) / SH) + 1;
  const OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
  const K = C * KH * KW;
  const P = N * OH * OW;
  const engine = x.engine;
  const out = engine.empty([N, OC, OH, OW], op);
  const dims = { N, C, H, W, OC, OH, OW, KH, KW, SH, SW, PH, PW };
  if (P > 0) {
    const wg = (engine.tuning.get('conv2d')?.WG as number | undefined) ?? WG;
    engine.dispatch('conv2d', {
      bindings: { x, weight, bias: bias ?? weight, out, weight_scalar: weight },
      uniforms: { ...dims, K, P, alpha: slope },
      constants: { ALIGNED: K % 4 === 0, HAS_BIAS: bias !== null, ...(activation ? { ACT: UNARY_OPS[activation] } : {}), WG: wg },
      workgroups: grid(x, Math.ceil(P / 4 / wg), Math.ceil(OC / 4)),
      flops: 2 * P * OC * K,
    });
  }

  // With a fused activation, the gradient before it, dz = dy * act'(out), is computed once for all inputs.
  const preActivation = epilogueGradient(activation, out, slope);
  const dInput = (dy: Tensor): Tensor => {
    dy = preActivation(dy);
    const dx = engine.empty(x.shape, `d(${x.name})`);
    const CB = Math.ceil(C / 4);
    const WB = Math.ceil(W / 4);
    const total = N * CB * H * WB;
    engine.dispatch('conv2d_backward_input', { bindings: { dy, weight, dx }, uniforms: { ...dims, CB, WB, total }, threads: total });
    return dx;
  };
  const dWeight = (dy: Tensor, into?: Tensor): Tensor => {
    dy = preActivation(dy);
    const dw = output(op, engine, weight.shape, `d(${weight.name})`, into);
    if (P === 0) {
      engine.dispatch('fill', { bindings: { out: dw }, uniforms: { n: dw.size, value: 0 }, threads: dw.size });
      return dw;
    }
    const blocks = Math.ceil(OC / 4) * Math.ceil(K / 4);
    const groups = Math.ceil(blocks / WG);
    // Split the reduction over positions so that about 8192 invocations run, in chunks of >= 64.
    const wanted = Math.max(1, Math.min(Math.ceil(P / 64), Math.ceil(8192 / (groups * WG)), engine.limits.maxComputeWorkgroupsPerDimension));
    const chunk = Math.ceil(P / wanted);
    const splits = Math.ceil(P / chunk);
    if (groups > engine.limits.maxComputeWorkgroupsPerDimension) throw new Error(`${op}: weight ${shapeString(weight.shape)} is too large for the weight-gradient kernel`);
    const spec = (target: Tensor) => ({ bindings: { x, dy, dw: target }, uniforms: { ...dims, K, P, chunk }, workgroups: [groups, splits] as [number, number] });
    if (splits === 1) {
      engine.dispatch('conv2d_backward_weight', spec(dw));
      return dw;
    }
    const partial = engine.empty([splits, OC * K], `d(${weight.name}).partial`);
    engine.dispatch('conv2d_backward_weight', spec(partial));
    const flat = engine.view(dw, [OC * K], `d(${weight.name}).flat`);
    sum(partial, 0, flat);
    partial.dispose();
    flat.dispose();
    return dw;
  };
  const dBias = (dy: Tensor, into?: Tensor): Tensor => {
    dy = preActivation(dy);
    const rows = engine.view(dy, [N, OC, OH * OW], `${dy.name}.rows`);
    const perImage = sum(rows, 2);
    rows.dispose();
    const db = sum(perImage, 0, into);
    perImage.dispose();
    return db;
  };
  const name = activation ? `${op}+${activation}` : op;
  return record(out, name, bias ? [x, weight, bias] : [x, weight], bias ? [dInput, dWeight, dBias] : [dInput, dWeight], [out]);
}
