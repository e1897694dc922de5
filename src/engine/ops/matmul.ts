// Matrix product (with the transposed forms its backward needs) and the dense-layer bias.
import type { Engine } from '../engine.js';
import { record } from '../graph.js';
import type { Constants } from '../kernel.js';
import type { KernelName } from '../kernels.js';
import type { Parameter } from '../parameters.js';
import { shapeString, type GradientFn, type Tensor } from '../tensor.js';
import { checkFused, UNARY_OPS, type FusedActivation } from './activation.js';
import { alive, output, rank } from './check.js';
import { epilogueGradient } from './elementwise.js';
import { sum } from './reduce.js';

export interface MatmulOptions {
  /** Use A transposed: A is stored [K, M]. */
  transA?: boolean;
  /** Use B transposed: B is stored [N, K]. */
  transB?: boolean;
  /** Write C into this [M, N] tensor instead of a new one. */
  out?: Tensor;
}

/**
 * The matmul kernels, each a complete variant of the same product (see the .wgsl files): which
 * one runs, and with which override constants, is engine.tuning's 'matmul' entry (matmulTuning),
 * chosen by the autotuner after a float64 check; DEFAULT_MATMUL otherwise. `tile` is the
 * [rows, columns] of C one workgroup computes.
 */
export const MATMUL_VARIANTS = {
  /** A 4x4 register block per invocation, vec4 loads. */
  block4: { kernel: 'matmul', tile: (c: Constants) => [4 * (c.WG_Y as number), 4 * (c.WG_X as number)] },
  /** An 8x8 register block per invocation: twice the multiply-adds per load. */
  block8: { kernel: 'matmul_block8', tile: (c: Constants) => [8 * (c.WG_Y as number), 8 * (c.WG_X as number)] },
  /** Workgroup-memory tiles of op(A) and op(B), 4x4 register blocks from them. */
  tiled: { kernel: 'matmul_tiled', tile: (c: Constants) => [4 * (c.WG_Y as number), 4 * (c.WG_X as number)] },
  /** Quads of subgroup lanes sharing loads by subgroupShuffle (the `subgroups` feature). */
  subgroup: { kernel: 'matmul_subgroup', tile: (c: Constants) => [(8 * (c.WG as number)) / 4 / (c.QX as number), 8 * (c.QX as number)] },
} as const satisfies Record<string, { kernel: KernelName; tile: (c: Constants) => number[] }>;

export type MatmulVariant = keyof typeof MATMUL_VARIANTS;

const VARIANT_NAMES = Object.keys(MATMUL_VARIANTS) as MatmulVariant[];

/** A matmul kernel variant with its override constants (workgroup shape and the like). */
export interface MatmulChoice {
  variant: MatmulVariant;
  constants: Constants;
}

// The fastest on SwiftShader (README, Benchmark): 8x8 blocks in workgroups of 4x4 invocations, about
// twice the base variant's GFLOP/s on a 1024^3 product there.
export const DEFAULT_MATMUL: MatmulChoice = { variant: 'block8', constants: { WG_X: 4, WG_Y: 4 } };

/**
 * engine.tuning's 'matmul' entry for a choice: its constants plus VARIANT, the variant's index in
 * MATMUL_VARIANTS (tuning entries hold numbers). Set it to force a variant.
 */
export function matmulTuning(choice: MatmulChoice): Constants {
  return { ...choice.constants, VARIANT: VARIANT_NAMES.indexOf(choice.variant) };
}

/** The variant batchedGemm runs on this engine. */
export function matmulChoice(engine: Engine): MatmulChoice {
  const tuned = engine.tuning.get('matmul');
  return tuned ? decodeMatmulTuning(tuned) : DEFAULT_MATMUL;
}

/** The choice an engine.tuning 'matmul' entry (matmulTuning) stands for. */
export function decodeMatmulTuning(tuned: Constants): MatmulChoice {
  const { VARIANT, ...constants } = tuned;
  const variant = VARIANT_NAMES[VARIANT as number];
  if (!variant) throw new Error(`matmul: engine.tuning 'matmul' has VARIANT ${VARIANT}, not one of 0..${VARIANT_NAMES.length - 1} (${VARIANT_NAMES.join(', ')}); set it with matmulTuning`);
  return { variant, constants };
}

/**
 * The subgroup sizes of the engine's device when matmul_subgroup can run there: the device has
 * the `subgroups` feature and every subgroup has at least 4 lanes (a quad). Null otherwise.
 */
export function subgroupSizes(engine: Engine): { min: number; max: number } | null {
  if (!engine.device.features.has('subgroups')) return null;
  const info = (engine.adapter?.info ?? (engine.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo) as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
  const min = info?.subgroupMinSize;
  const max = info?.subgroupMaxSize;
  if (min === undefined || max === undefined || min < 4) return null;
  return { min, max };
}

interface Epilogue {
  bias: Tensor | null;
  activation: FusedActivation | null;
  alpha: number;
}

/** C = op(A) . op(B) for 2-D tensors. */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const out = gemm('matmul', a, b, transA, transB, { bias: null, activation: null, alpha: 0 }, options.out);
  // C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC; then undo the op on each side.
  return record(out, 'matmul', [a, b], [
    (dy, into) => (transA ? matmul(b, dy, { transA: transB, transB: true, out: into }) : matmul(dy, b, { transB: !transB, out: into })),
    (dy, into) => (transB ? matmul(dy, a, { transA: true, transB: transA, out: into }) : matmul(a, dy, { transA: !transA, out: into })),
  ]);
}

/**
 * A dense layer's forward in one kernel: y = act(x W^T + b), W stored [out, in] as nn.Linear.
 * `slope` is leaky_relu's slope (which must be positive for its derivative to follow from y).
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, activation: FusedActivation | null = null, slope = 0.01): Tensor {
  checkFused('linear', activation, slope);
  if (bias) {
    alive('linear', bias);
    rank('linear', bias, 1);
    if (bias.shape[0] !== weight.shape[0]) {
      throw new Error(`linear: bias ${bias.name} ${shapeString(bias.shape)} does not match weight ${weight.name} ${shapeString(weight.shape)}`);
    }
  }
  const y = gemm('linear', x, weight, false, true, { bias, activation, alpha: slope });
  const op = activation ? `linear+${activation}` : 'linear';
  // The gradient before the activation, dz = dy * act'(y), is computed once for all three inputs.
  const preActivation = epilogueGradient(activation, y, slope);
  return record(
    y,
    op,
    bias ? [x, weight, bias] : [x, weight],
    [
      (dy, into) => matmul(preActivation(dy), weight, { out: into }),
      (dy, into) => matmul(preActivation(dy), x, { transA: true, out: into }),
      ...(bias ? [(dy: Tensor, into?: Tensor) => sum(preActivation(dy), 0, into)] : []),
    ],
    [y],
  );
}

/**
 * K replicas' dense layer in one kernel: x [K, B, in] gives y [K, B, out], y[k] = act(x[k]
 * W_k^T + b_k), where `weights` are the K replicas' [out, in] parameters of one layer (the same
 * slot of consecutive rows of one ParameterStore, as Replicas.rowsOf gives) and `biases` theirs
 * or null. The weights are read straight from the store's [K, P] block. The backward is one
 * kernel for dx, one for every replica's dW and one for every db, the latter two written straight
 * into the store's gradient buffer: so backward() must find every replica's gradient empty and
 * unmasked (zeroGrad after each step); gradients() cannot be taken through it.
 */
export function replicaLinear(x: Tensor, weights: readonly Parameter[], biases: readonly Parameter[] | null, activation: FusedActivation | null = null, slope = 0.01): Tensor {
  const op = 'replicaLinear';
  checkFused(op, activation, slope);
  alive(op, x, ...weights, ...(biases ?? []));
  rank(op, x, 3);
  const [K, B, inFeatures] = x.shape as [number, number, number];
  const w = replicaBlock(op, 'weights', weights, K);
  const [outFeatures, wIn] = weights[0]!.shape as [number, number];
  if (weights[0]!.rank !== 2 || wIn !== inFeatures) {
    throw new Error(`${op}: weight ${weights[0]!.name} ${shapeString(weights[0]!.shape)} does not take x ${x.name} ${shapeString(x.shape)} ([K, B, in], weights [out, in])`);
  }
  const b = biases ? replicaBlock(op, 'biases', biases, K) : null;
  if (biases && (biases[0]!.rank !== 1 || biases[0]!.shape[0] !== outFeatures)) {
    throw new Error(`${op}: bias ${biases[0]!.name} ${shapeString(biases[0]!.shape)} does not match weight ${weights[0]!.name} ${shapeString(weights[0]!.shape)}`);
  }
  const engine = x.engine;
  const xs = { tensor: x, stride: B * inFeatures };
  const y = engine.empty([K, B, outFeatures], op);
  batchedGemm(op, { batch: K, M: B, N: outFeatures, K: inFeatures, a: xs, b: w, c: { tensor: y, stride: B * outFeatures }, transB: true, bias: b, activation, alpha: slope });
  const preActivation = epilogueGradient(activation, y, slope);
  const dzOf = (dy: Tensor) => ({ tensor: preActivation(dy), stride: B * outFeatures });
  const dx: GradientFn = (dy, into) => {
    const out = output(op, engine, x.shape, `d(${x.name})`, into);
    batchedGemm(op, { batch: K, M: B, N: inFeatures, K: outFeatures, a: dzOf(dy), b: w, c: { tensor: out, stride: B * inFeatures } });
    return out;
  };
  const dW = replicaGradients(op, weights, (dy) =>
    batchedGemm(op, { batch: K, M: outFeatures, N: inFeatures, K: B, a: dzOf(dy), b: xs, c: gradientBlock(weights), transA: true }),
  );
  // db_k = ones[1, B] . dz_k: the same kernel, one row.
  const db = biases
    ? replicaGradients(op, biases, (dy) => {
        const ones = engine.full([B], 1, `${op}.ones`);
        batchedGemm(op, { batch: K, M: 1, N: outFeatures, K: B, a: { tensor: ones }, b: dzOf(dy), c: gradientBlock(biases) });
        ones.dispose();
      })
    : [];
  return record(y, activation ? `${op}+${activation}` : op, [x, ...weights, ...(biases ?? [])], [dx, ...dW, ...db], [y]);
}

/**
 * Checks that `params` are one slot of K consecutive rows of one store, frozen alike, and gives
 * their block of the store's weights (row k's parameter at offset + k * stride).
 */
function replicaBlock(op: string, what: string, params: readonly Parameter[], K: number): Strided {
  const first = params[0];
  if (!first || params.length !== K) throw new Error(`${op}: ${params.length} ${what} for x's ${K} replicas (x is [K, B, in])`);
  const stray = params.findIndex((p, k) => p.store !== first.store || p.slot !== first.slot || p.row !== first.row + k);
  if (stray >= 0) {
    const p = params[stray]!;
    throw new Error(
      `${op}: ${what} must be one parameter of consecutive replicas (the same slot of rows ${first.row}..${first.row + K - 1} of one ParameterStore, as Replicas.rowsOf gives); ${what}[${stray}] ${p.name} is slot ${p.slot} of row ${p.row} of store ${p.store.id}, ${what}[0] ${first.name} slot ${first.slot} of row ${first.row} of store ${first.store.id}`,
    );
  }
  if (params.some((p) => p.frozen !== first.frozen)) throw new Error(`${op}: ${what} ${first.name} are frozen in some replicas and not in others; freeze all or none`);
  return { tensor: first.store.weights, offset: first.flatOffset, stride: first.store.size };
}

/** The gradient regions of replicas' parameters (checked by replicaBlock) in their store's gradient buffer. */
function gradientBlock(params: readonly Parameter[]): Strided {
  const first = params[0]!;
  return { tensor: first.store.grads(), offset: first.flatOffset, stride: first.store.size };
}

/**
 * Gradient functions for K replica parameters whose gradients one batched kernel (`write`) puts
 * straight into their gradient regions: the first called runs it for this dy, each returns its
 * region. Only right where backward() hands each its empty, unmasked region (`into`).
 */
function replicaGradients(op: string, params: readonly Parameter[], write: (dy: Tensor) => void): GradientFn[] {
  let writtenFor: Tensor | null = null;
  const refuse = (q: Parameter) => {
    const why = q.hasGradient ? 'already has a gradient' : q.mask ? 'is masked' : 'is not written by backward() alone (gradients(), or a parameter used by several ops)';
    return new Error(
      `${op}: ${q.name} (replica ${q.row}) ${why}; ${op} writes every replica's gradient straight into its region, so it needs empty, unmasked replica gradients (zeroGrad after each step) and backward()`,
    );
  };
  return params.map((p) => (dy, into) => {
    if (!into || into !== p.gradView()) throw refuse(p);
    if (writtenFor !== dy) {
      const blocked = params.find((q) => q.hasGradient || q.mask);
      if (blocked) throw refuse(blocked);
      write(dy);
      writtenFor = dy;
    }
    return into;
  });
}

/** 2-D C = op(A) . op(B) (+ epilogue) into a new tensor or `into`: one batch of the batched product. */
function gemm(op: string, a: Tensor, b: Tensor, transA: boolean, transB: boolean, epilogue: Epilogue, into?: Tensor): Tensor {
  alive(op, a, b);
  rank(op, a, 2);
  rank(op, b, 2);
  const [M, Ka] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [Kb, N] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (Ka !== Kb) {
    throw new Error(
      `${op}: inner dimensions differ: ${a.name} ${shapeString(a.shape)}${transA ? '^T' : ''} . ${b.name} ${shapeString(b.shape)}${transB ? '^T' : ''} (${Ka} vs ${Kb})`,
    );
  }
  const out = output(op, a.engine, [M, N], op, into);
  batchedGemm(op, {
    batch: 1,
    M,
    N,
    K: Ka,
    a: { tensor: a },
    b: { tensor: b },
    c: { tensor: out },
    transA,
    transB,
    bias: epilogue.bias ? { tensor: epilogue.bias } : null,
    activation: epilogue.activation,
    alpha: epilogue.alpha,
  });
  return out;
}

/**
 * A batch of matrices in one tensor: matrix i starts at element offset + i * stride (stride 0:
 * every batch uses the same matrix), stored densely (rows x cols, row-major) from there.
 */
export interface Strided {
  tensor: Tensor;
  /** Element where matrix 0 starts (default 0). */
  offset?: number;
  /** Elements from one matrix to the next (default 0). */
  stride?: number;
}

export interface BatchedGemmSpec {
  batch: number;
  /** op(A) is [M, K], op(B) [K, N], C [M, N]; A is stored [M, K] or, with transA, [K, M]; B [K, N] or, with transB, [N, K]. */
  M: number;
  N: number;
  K: number;
  a: Strided;
  b: Strided;
  /** Written. */
  c: Strided;
  transA?: boolean;
  transB?: boolean;
  /** Epilogue C = act(C + bias[col]); bias i is a vector of N. */
  bias?: Strided | null;
  activation?: FusedActivation | null;
  /** leaky_relu's slope. */
  alpha?: number;
}

/**
 * C_i = act(op(A_i) . op(B_i) + bias_i) for i < batch, in one dispatch (batch over workgroup z),
 * with no autograd: the kernel that matmul, linear and replicaLinear record. Each operand is
 * checked to lie within its tensor. The vec4 path runs where the stored rows of A and B and
 * their offsets and strides are multiples of 4 (see lib/matmul_operands.wgsl). The kernel is the
 * engine's matmul variant (matmulChoice).
 */
export function batchedGemm(op: string, spec: BatchedGemmSpec): void {
  const { batch, M, N, K } = spec;
  const transA = spec.transA ?? false;
  const transB = spec.transB ?? false;
  const bias = spec.bias ?? null;
  const operands: [string, Strided | null, number][] = [
    ['a', spec.a, M * K],
    ['b', spec.b, K * N],
    ['c', spec.c, M * N],
    ['bias', bias, N],
  ];
  const present = operands.filter((o): o is [string, Strided, number] => o[1] !== null);
  alive(op, ...present.map(([, s]) => s.tensor));
  if (![batch, M, N, K].every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`${op}: batch ${batch}, M ${M}, N ${N}, K ${K} must be non-negative integers`);
  for (const [role, s, size] of batch > 0 ? present : []) {
    const offset = s.offset ?? 0;
    const stride = s.stride ?? 0;
    const end = offset + (batch - 1) * stride + size;
    if (!Number.isInteger(offset) || !Number.isInteger(stride) || offset < 0 || stride < 0 || end > s.tensor.size) {
      throw new Error(
        `${op}: ${role} = ${s.tensor.name} ${shapeString(s.tensor.shape)} is too small for ${batch} matrices of ${size} elements from element ${offset}, ${stride} apart (needs ${end})`,
      );
    }
  }
  // The vec4 path loads A and B in whole vec4s: their stored rows, offsets and strides must be
  // multiples of 4 (C and bias are written and read by element).
  const rowA = transA ? M : K;
  const rowB = transB ? K : N;
  const aligned = [rowA, rowB, spec.a.offset ?? 0, spec.a.stride ?? 0, spec.b.offset ?? 0, spec.b.stride ?? 0].every((v) => v % 4 === 0);
  const engine = spec.a.tensor.engine;
  const { variant, constants } = matmulChoice(engine);
  const { kernel, tile } = MATMUL_VARIANTS[variant];
  if (variant === 'subgroup' && !subgroupSizes(engine)) {
    throw new Error(`${op}: the matmul_subgroup variant needs the 'subgroups' feature with subgroups of 4 or more lanes, which this device (${engine.adapterName}) lacks; tune again or set another variant in engine.tuning`);
  }
  const [tileRows, tileCols] = tile(constants);
  engine.dispatch(kernel, {
    bindings: { a: spec.a.tensor, b: spec.b.tensor, c: spec.c.tensor, bias: bias?.tensor ?? engine.placeholder() },
    uniforms: {
      M,
      N,
      K,
      alpha: spec.alpha ?? 0,
      a_offset: spec.a.offset ?? 0,
      a_stride: spec.a.stride ?? 0,
      b_offset: spec.b.offset ?? 0,
      b_stride: spec.b.stride ?? 0,
      c_offset: spec.c.offset ?? 0,
      c_stride: spec.c.stride ?? 0,
      bias_offset: bias?.offset ?? 0,
      bias_stride: bias?.stride ?? 0,
    },
    // The tuned constants last: they are the kernel's overrides as the tuner (or a test) set them.
    constants: {
      TRANS_A: transA,
      TRANS_B: transB,
      ALIGNED: aligned,
      HAS_BIAS: bias !== null,
      ...(spec.activation ? { ACT: UNARY_OPS[spec.activation] } : {}),
      ...constants,
    },
    workgroups: [Math.ceil(N / tileCols), Math.ceil(M / tileRows), batch],
    flops: 2 * batch * M * N * K,
  });
}

/** x [.., C] + bias [C] added to every row. */
export function addBias(x: Tensor, bias: Tensor): Tensor {
  alive('addBias', x, bias);
  rank('addBias', bias, 1);
  const cols = bias.shape[0]!;
  if (x.rank < 1 || x.shape[x.rank - 1] !== cols) {
    throw new Error(`addBias: bias ${bias.name} ${shapeString(bias.shape)} does not match the last axis of ${x.name} ${shapeString(x.shape)}`);
  }
  const out = x.engine.empty(x.shape, 'addBias');
  x.engine.dispatch('bias_add', { bindings: { x, bias, out }, uniforms: { n: x.size, cols }, threads: x.size });
  return record(out, 'addBias', [x, bias], [
    (dy) => dy,
    (dy, into) => {
      const rows = dy.engine.view(dy, [dy.size / cols, cols]);
      const db = sum(rows, 0, into);
      rows.dispose();
      return db;
    },
  ]);
}
