// Float64 CPU reference implementations of the engine's ops, written independently of the
// engine (no engine imports): forward values, analytic gradients (given dy, the gradient of the
// loss with respect to the op's output), and central finite differences to check those
// gradients. Tests compare the GPU against these.

export type Shape = readonly number[];

export interface Arr {
  data: Float64Array;
  shape: number[];
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---------------------------------------------------------------- deterministic data

/**
 * Philox4x32-10 (Salmon et al., SC 2011) with BigInt products; counter [4] and key [2] as u32.
 * Checked against Random123's known-answer vectors in flat.test.ts.
 */
export function philox(counter: readonly number[], key: readonly number[]): number[] {
  const mulhilo = (a: number, b: number): [number, number] => {
    const p = BigInt(a) * BigInt(b);
    return [Number(p >> 32n), Number(p & 0xffffffffn)];
  };
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0) as [number, number, number, number];
  let [k0, k1] = key.map((v) => v >>> 0) as [number, number];
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + 0x9e3779b9) >>> 0;
      k1 = (k1 + 0xbb67ae85) >>> 0;
    }
    const [hi0, lo0] = mulhilo(0xd2511f53, c0);
    const [hi1, lo1] = mulhilo(0xcd9e8d57, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** mulberry32: uniform floats in [0, 1) from a 32-bit seed. */
export function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal samples (Box-Muller), rounded to float32 so the GPU sees exactly the same values. */
export function normal(shape: Shape, seed: number, std = 1, mean = 0): Float64Array {
  const next = generator(seed);
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = 1 - next();
    const u2 = next();
    out[i] = Math.fround(mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
  }
  return out;
}

/** Uniform samples in [low, high), rounded to float32. */
export function uniform(shape: Shape, seed: number, low = 0, high = 1): Float64Array {
  const next = generator(seed);
  const n = sizeOf(shape);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.fround(low + (high - low) * next());
  return out;
}

/** Rows of probabilities (each row positive and summing to 1), rounded to float32. */
export function softTargets(rows: number, cols: number, seed: number): Float64Array {
  const u = uniform([rows, cols], seed, 0.05, 1);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += u[r * cols + c]!;
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.fround(u[r * cols + c]! / s);
  }
  return out;
}

export function oneHot(rows: number, cols: number, seed: number): Float64Array {
  const next = generator(seed);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) out[r * cols + Math.floor(next() * cols)] = 1;
  return out;
}

/** Random class ids in [0, cols), one per row. */
export function classIds(rows: number, cols: number, seed: number): Float64Array {
  const next = generator(seed);
  return Float64Array.from({ length: rows }, () => Math.floor(next() * cols));
}

/** One-hot rows [ids.length, cols] of class ids. */
export function oneHotOf(ids: ArrayLike<number>, cols: number): Float64Array {
  const out = new Float64Array(ids.length * cols);
  for (let r = 0; r < ids.length; r++) out[r * cols + ids[r]!] = 1;
  return out;
}

// ---------------------------------------------------------------- elementwise

export type UnaryName = 'relu' | 'leaky_relu' | 'gelu' | 'sigmoid' | 'tanh' | 'square' | 'scale' | 'exp' | 'log';

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

function sigmoid(v: number): number {
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

export function unaryValue(op: UnaryName, v: number, alpha = 0): number {
  switch (op) {
    case 'relu':
      return Math.max(v, 0); // NaN for NaN, as IEEE maximum
    case 'leaky_relu':
      return v > 0 ? v : alpha * v;
    case 'gelu':
      return 0.5 * v * (1 + Math.tanh(GELU_C * (v + GELU_A * v * v * v)));
    case 'sigmoid':
      return sigmoid(v);
    case 'tanh':
      return Math.tanh(v);
    case 'square':
      return v * v;
    case 'scale':
      return alpha * v;
    case 'exp':
      return Math.exp(v);
    case 'log':
      return Math.log(v);
  }
}

/**
 * f'(v). At the kinks the engine's convention: relu'(0) = 0 and leaky_relu'(0) = alpha (a unit
 * exactly at 0 is treated as inactive); at NaN, which lies on neither side of the kink, NaN.
 */
export function unaryDerivative(op: UnaryName, v: number, alpha = 0): number {
  switch (op) {
    case 'relu':
      return v > 0 ? 1 : v <= 0 ? 0 : NaN;
    case 'leaky_relu':
      return v > 0 ? 1 : v <= 0 ? alpha : NaN;
    case 'gelu': {
      const u = GELU_C * (v + GELU_A * v * v * v);
      const t = Math.tanh(u);
      const du = GELU_C * (1 + 3 * GELU_A * v * v);
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du;
    }
    case 'sigmoid': {
      const s = sigmoid(v);
      return s * (1 - s);
    }
    case 'tanh': {
      const t = Math.tanh(v);
      return 1 - t * t;
    }
    case 'square':
      return 2 * v;
    case 'scale':
      return alpha;
    case 'exp':
      return Math.exp(v);
    case 'log':
      return 1 / v;
  }
}

export function unary(op: UnaryName, x: Float64Array, alpha = 0): Float64Array {
  return x.map((v) => unaryValue(op, v, alpha));
}

export function unaryGrad(op: UnaryName, x: Float64Array, dy: Float64Array, alpha = 0): Float64Array {
  return x.map((v, i) => dy[i]! * unaryDerivative(op, v, alpha));
}

/** min(1, alpha / (sqrt(v) + 1e-6)): the global-norm clipping factor from a squared norm v. */
export function clipFactor(x: Float64Array, alpha: number): Float64Array {
  return x.map((v) => Math.min(1, alpha / (Math.sqrt(v) + 1e-6)));
}

export type BinaryName = 'add' | 'sub' | 'mul';

export function binary(op: BinaryName, a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => (op === 'add' ? v + b[i]! : op === 'sub' ? v - b[i]! : v * b[i]!));
}

export function binaryGrad(op: BinaryName, a: Float64Array, b: Float64Array, dy: Float64Array): [Float64Array, Float64Array] {
  switch (op) {
    case 'add':
      return [dy.slice(), dy.slice()];
    case 'sub':
      return [dy.slice(), dy.map((v) => -v)];
    case 'mul':
      return [dy.map((v, i) => v * b[i]!), dy.map((v, i) => v * a[i]!)];
  }
}

// ---------------------------------------------------------------- matmul and bias

export interface MatmulShapes {
  M: number;
  N: number;
  K: number;
  /** Index into the stored A of op(A)[i, k]. */
  ia: (i: number, k: number) => number;
  /** Index into the stored B of op(B)[k, j]. */
  ib: (k: number, j: number) => number;
}

export function matmulShapes(aShape: Shape, bShape: Shape, transA: boolean, transB: boolean): MatmulShapes {
  const [a0, a1] = aShape as [number, number];
  const [b0, b1] = bShape as [number, number];
  const [M, K] = transA ? [a1, a0] : [a0, a1];
  const [Kb, N] = transB ? [b1, b0] : [b0, b1];
  if (K !== Kb) throw new Error(`reference matmul: inner dimensions ${K} and ${Kb} differ`);
  // Stored A is [M, K] (row i, col k) or, transposed, [K, M] (row k, col i).
  const ia = transA ? (i: number, k: number) => k * M + i : (i: number, k: number) => i * K + k;
  const ib = transB ? (k: number, j: number) => j * K + k : (k: number, j: number) => k * N + j;
  return { M, N, K, ia, ib };
}

export function matmul(a: Float64Array, aShape: Shape, b: Float64Array, bShape: Shape, transA = false, transB = false): Arr {
  const { M, N, K, ia, ib } = matmulShapes(aShape, bShape, transA, transB);
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[ia(i, k)]! * b[ib(k, j)]!;
      c[i * N + j] = s;
    }
  }
  return { data: c, shape: [M, N] };
}

/** Gradients of the stored A and B, accumulated element by element from dC (no transposes needed). */
export function matmulGrad(
  a: Float64Array,
  aShape: Shape,
  b: Float64Array,
  bShape: Shape,
  dc: Float64Array,
  transA = false,
  transB = false,
): [Float64Array, Float64Array] {
  const { M, N, K, ia, ib } = matmulShapes(aShape, bShape, transA, transB);
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const g = dc[i * N + j]!;
      for (let k = 0; k < K; k++) {
        da[ia(i, k)] += g * b[ib(k, j)]!;
        db[ib(k, j)] += g * a[ia(i, k)]!;
      }
    }
  }
  return [da, db];
}

export function addBias(x: Float64Array, bias: Float64Array): Float64Array {
  const cols = bias.length;
  return x.map((v, i) => v + bias[i % cols]!);
}

export function addBiasGrad(x: Float64Array, bias: Float64Array, dy: Float64Array): [Float64Array, Float64Array] {
  const cols = bias.length;
  const db = new Float64Array(cols);
  for (let i = 0; i < x.length; i++) db[i % cols] += dy[i]!;
  return [dy.slice(), db];
}

// ---------------------------------------------------------------- reductions

function split(shape: Shape, axis: number): [number, number, number] {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return [outer, shape[axis]!, inner];
}

function normAxis(shape: Shape, axis: number): number {
  return axis < 0 ? axis + shape.length : axis;
}

/** Sum (or mean) over `axis`, or over everything (shape []) when axis is undefined. */
export function reduce(x: Float64Array, shape: Shape, axis: number | undefined, mean: boolean): Arr {
  if (axis === undefined) {
    let s = 0;
    for (const v of x) s += v;
    return { data: Float64Array.of(mean ? s / x.length : s), shape: [] };
  }
  const ax = normAxis(shape, axis);
  const [outer, len, inner] = split(shape, ax);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < len; l++) {
      for (let i = 0; i < inner; i++) out[o * inner + i] += x[(o * len + l) * inner + i]!;
    }
  }
  if (mean) for (let i = 0; i < out.length; i++) out[i] /= len;
  return { data: out, shape: shape.filter((_, i) => i !== ax) };
}

export function reduceGrad(shape: Shape, axis: number | undefined, mean: boolean, dy: Float64Array): Float64Array {
  const n = sizeOf(shape);
  if (axis === undefined) return new Float64Array(n).fill(mean ? dy[0]! / n : dy[0]!);
  const [outer, len, inner] = split(shape, normAxis(shape, axis));
  const dx = new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < len; l++) {
      for (let i = 0; i < inner; i++) dx[(o * len + l) * inner + i] = (mean ? 1 / len : 1) * dy[o * inner + i]!;
    }
  }
  return dx;
}

// ---------------------------------------------------------------- losses

/**
 * Per-row -sum_j t_j log softmax(x)_j, stable for large logits (log-sum-exp around the row max).
 * A zero target adds nothing, even against a logit of -inf (0 log 0 = 0, as in entropy).
 */
export function softmaxCrossEntropyRows(logits: Float64Array, targets: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, logits[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(logits[r * cols + c]! - m);
    const lse = m + Math.log(s);
    let l = 0;
    for (let c = 0; c < cols; c++) if (targets[r * cols + c] !== 0) l -= targets[r * cols + c]! * (logits[r * cols + c]! - lse);
    out[r] = l;
  }
  return out;
}

/** d(loss_r)/d(logits[r, c]) = dloss_r * (softmax_c * sum_k t_k - t_c). */
export function softmaxCrossEntropyRowsGrad(logits: Float64Array, targets: Float64Array, rows: number, cols: number, dloss: Float64Array): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    let tsum = 0;
    for (let c = 0; c < cols; c++) {
      m = Math.max(m, logits[r * cols + c]!);
      tsum += targets[r * cols + c]!;
    }
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(logits[r * cols + c]! - m);
    for (let c = 0; c < cols; c++) {
      const p = Math.exp(logits[r * cols + c]! - m) / s;
      dx[r * cols + c] = dloss[r]! * (p * tsum - targets[r * cols + c]!);
    }
  }
  return dx;
}

export function softmaxCrossEntropy(logits: Float64Array, targets: Float64Array, rows: number, cols: number): number {
  const l = softmaxCrossEntropyRows(logits, targets, rows, cols);
  let s = 0;
  for (const v of l) s += v;
  return s / rows;
}

export function softmaxCrossEntropyGrad(logits: Float64Array, targets: Float64Array, rows: number, cols: number, dy: number): Float64Array {
  return softmaxCrossEntropyRowsGrad(logits, targets, rows, cols, new Float64Array(rows).fill(dy / rows));
}

export function mse(p: Float64Array, t: Float64Array): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += (p[i]! - t[i]!) ** 2;
  return s / p.length;
}

export function mseGrad(p: Float64Array, t: Float64Array, dy: number): [Float64Array, Float64Array] {
  const dp = p.map((v, i) => (2 * (v - t[i]!) * dy) / p.length);
  return [dp, dp.map((v) => -v)];
}

// ---------------------------------------------------------------- shape ops

export function slice(x: Float64Array, shape: Shape, axis: number, start: number, length: number): Arr {
  const ax = normAxis(shape, axis);
  const [outer, len, inner] = split(shape, ax);
  const out = new Float64Array(outer * length * inner);
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < length; l++) {
      for (let i = 0; i < inner; i++) out[(o * length + l) * inner + i] = x[(o * len + start + l) * inner + i]!;
    }
  }
  return { data: out, shape: shape.map((d, i) => (i === ax ? length : d)) };
}

export function sliceGrad(shape: Shape, axis: number, start: number, length: number, dy: Float64Array): Float64Array {
  const ax = normAxis(shape, axis);
  const [outer, len, inner] = split(shape, ax);
  const dx = new Float64Array(sizeOf(shape));
  for (let o = 0; o < outer; o++) {
    for (let l = 0; l < length; l++) {
      for (let i = 0; i < inner; i++) dx[(o * len + start + l) * inner + i] = dy[(o * length + l) * inner + i]!;
    }
  }
  return dx;
}

export function concat(xs: Float64Array[], shapes: Shape[], axis: number): Arr {
  const ax = normAxis(shapes[0]!, axis);
  const total = shapes.reduce((s, sh) => s + sh[ax]!, 0);
  const shape = shapes[0]!.map((d, i) => (i === ax ? total : d));
  const [outer, , inner] = split(shape, ax);
  const out = new Float64Array(sizeOf(shape));
  let at = 0;
  xs.forEach((x, t) => {
    const len = shapes[t]![ax]!;
    for (let o = 0; o < outer; o++) {
      for (let l = 0; l < len; l++) {
        for (let i = 0; i < inner; i++) out[(o * total + at + l) * inner + i] = x[(o * len + l) * inner + i]!;
      }
    }
    at += len;
  });
  return { data: out, shape };
}

export function concatGrad(shapes: Shape[], axis: number, dy: Float64Array): Float64Array[] {
  const ax = normAxis(shapes[0]!, axis);
  const total = shapes.reduce((s, sh) => s + sh[ax]!, 0);
  const outShape = shapes[0]!.map((d, i) => (i === ax ? total : d));
  let at = 0;
  return shapes.map((sh) => {
    const g = slice(dy, outShape, ax, at, sh[ax]!).data;
    at += sh[ax]!;
    return g;
  });
}

// ---------------------------------------------------------------- dropout

/** PCG hash (Jarzynski & Olano 2020) on u32. */
export function pcg(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/**
 * The keep mask the engine's dropout draws: element i is kept when 24 bits of
 * pcg(i ^ pcg(seed)), as a fraction of 2^24, are >= rate (rate as the f32 the GPU sees).
 */
export function dropoutMask(n: number, seed: number, rate: number): Uint8Array {
  const s = pcg(seed >>> 0);
  const r = Math.fround(rate);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = (pcg((i ^ s) >>> 0) >>> 8) / 16777216 >= r ? 1 : 0;
  return mask;
}

/** x * mask / (1 - rate), as PyTorch: a dropped NaN or infinity gives NaN. */
export function dropout(x: Float64Array, mask: Uint8Array, rate: number): Float64Array {
  return x.map((v, i) => (v * mask[i]!) / (1 - rate));
}

export function dropoutGrad(mask: Uint8Array, rate: number, dy: Float64Array): Float64Array {
  return dropout(dy, mask, rate);
}

// ---------------------------------------------------------------- finite differences

/**
 * Central differences (f(x + h e_i) - f(x - h e_i)) / 2h of a scalar function at the given
 * indices of x, in float64 (an absolute step: float64 still resolves it around logits of 1000).
 */
export function finiteDifferences(f: (x: Float64Array) => number, x: Float64Array, indices: readonly number[], h = 1e-5): Float64Array {
  const out = new Float64Array(indices.length);
  const probe = x.slice();
  indices.forEach((idx, n) => {
    const v = x[idx]!;
    probe[idx] = v + h;
    const up = f(probe);
    probe[idx] = v - h;
    const down = f(probe);
    probe[idx] = v;
    out[n] = (up - down) / (2 * h);
  });
  return out;
}

/** sum_i y_i * w_i: the scalar the tests differentiate (w makes dy non-uniform). */
export function dot(y: Float64Array, w: Float64Array): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * w[i]!;
  return s;
}

/** Up to `count` distinct indices below n, deterministic from the seed (all of them when n <= count). */
export function sampleIndices(n: number, count: number, seed: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const next = generator(seed);
  const picked = new Set<number>();
  while (picked.size < count) picked.add(Math.floor(next() * n));
  return [...picked].sort((a, b) => a - b);
}

// ---------------------------------------------------------------- convolution and pooling

export interface ConvGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  OC: number;
  KH: number;
  KW: number;
  /** One number for both axes or [vertical, horizontal], as conv2d takes them. */
  stride: number | readonly [number, number];
  padding: number | readonly [number, number];
}

/** [vertical, horizontal] of a per-axis setting given as one number or a pair. */
function axes(v: number | readonly [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

export function convOutSize(g: ConvGeometry): [number, number] {
  const [SH, SW] = axes(g.stride);
  const [PH, PW] = axes(g.padding);
  return [Math.floor((g.H + 2 * PH - g.KH) / SH) + 1, Math.floor((g.W + 2 * PW - g.KW) / SW) + 1];
}

/**
 * Direct NCHW convolution: y[n, oc, oh, ow] = b[oc] + sum w[oc, ic, kh, kw] * x[n, ic, oh*s - p + kh, ow*s - p + kw],
 * with x zero in the padding: a NaN or infinite weight times a padded zero gives NaN, as an
 * explicitly padded input would (and PyTorch does).
 */
export function conv2d(x: Float64Array, w: Float64Array, b: Float64Array | null, g: ConvGeometry): Arr {
  const [OH, OW] = convOutSize(g);
  const [SH, SW] = axes(g.stride);
  const [PH, PW] = axes(g.padding);
  const out = new Float64Array(g.N * g.OC * OH * OW);
  for (let n = 0; n < g.N; n++) {
    for (let oc = 0; oc < g.OC; oc++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let s = b ? b[oc]! : 0;
          for (let ic = 0; ic < g.C; ic++) {
            for (let kh = 0; kh < g.KH; kh++) {
              const ih = oh * SH - PH + kh;
              for (let kw = 0; kw < g.KW; kw++) {
                const iw = ow * SW - PW + kw;
                const inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
                s += w[((oc * g.C + ic) * g.KH + kh) * g.KW + kw]! * (inside ? x[((n * g.C + ic) * g.H + ih) * g.W + iw]! : 0);
              }
            }
          }
          out[((n * g.OC + oc) * OH + oh) * OW + ow] = s;
        }
      }
    }
  }
  return { data: out, shape: [g.N, g.OC, OH, OW] };
}

/** Gradients [dx, dw, db] of conv2d given dy [N, OC, OH, OW] (scattered, the adjoint of the loops above). */
export function conv2dGrad(x: Float64Array, w: Float64Array, g: ConvGeometry, dy: Float64Array): [Float64Array, Float64Array, Float64Array] {
  const [OH, OW] = convOutSize(g);
  const [SH, SW] = axes(g.stride);
  const [PH, PW] = axes(g.padding);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(g.OC);
  for (let n = 0; n < g.N; n++) {
    for (let oc = 0; oc < g.OC; oc++) {
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          const d = dy[((n * g.OC + oc) * OH + oh) * OW + ow]!;
          db[oc]! += d;
          for (let ic = 0; ic < g.C; ic++) {
            for (let kh = 0; kh < g.KH; kh++) {
              const ih = oh * SH - PH + kh;
              for (let kw = 0; kw < g.KW; kw++) {
                const iw = ow * SW - PW + kw;
                const inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
                const wi = ((oc * g.C + ic) * g.KH + kh) * g.KW + kw;
                const xi = ((n * g.C + ic) * g.H + ih) * g.W + iw;
                dw[wi]! += d * (inside ? x[xi]! : 0);
                if (inside) dx[xi]! += d * w[wi]!;
              }
            }
          }
        }
      }
    }
  }
  return [dx, dw, db];
}

export interface PoolGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  k: number;
  stride: number;
}

/**
 * Max (the first maximum in row-major window order; a NaN counts as above everything, so a window
 * holding one gives NaN and its first NaN is the argmax) or mean over k x k windows, no padding.
 * Returns the output and, for max, the flat index of each window's argmax.
 */
export function pool2d(x: Float64Array, g: PoolGeometry, max: boolean): Arr & { argmax: Int32Array } {
  const OH = Math.floor((g.H - g.k) / g.stride) + 1;
  const OW = Math.floor((g.W - g.k) / g.stride) + 1;
  const out = new Float64Array(g.N * g.C * OH * OW);
  const argmax = new Int32Array(out.length);
  for (let plane = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let at = (plane * g.H + oh * g.stride) * g.W + ow * g.stride;
        let best = x[at]!;
        let s = 0;
        for (let kh = 0; kh < g.k; kh++) {
          for (let kw = 0; kw < g.k; kw++) {
            const i = (plane * g.H + oh * g.stride + kh) * g.W + ow * g.stride + kw;
            const v = x[i]!;
            s += v;
            if (!Number.isNaN(best) && (v > best || Number.isNaN(v))) {
              best = v;
              at = i;
            }
          }
        }
        const o = (plane * OH + oh) * OW + ow;
        out[o] = max ? best : s / (g.k * g.k);
        argmax[o] = at;
      }
    }
  }
  return { data: out, shape: [g.N, g.C, OH, OW], argmax };
}

export function pool2dGrad(x: Float64Array, g: PoolGeometry, max: boolean, dy: Float64Array): Float64Array {
  const { shape, argmax } = pool2d(x, g, max);
  const [, , OH, OW] = shape as [number, number, number, number];
  const dx = new Float64Array(x.length);
  for (let plane = 0; plane < g.N * g.C; plane++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const o = (plane * OH + oh) * OW + ow;
        if (max) {
          dx[argmax[o]!]! += dy[o]!;
          continue;
        }
        for (let kh = 0; kh < g.k; kh++) {
          for (let kw = 0; kw < g.k; kw++) dx[(plane * g.H + oh * g.stride + kh) * g.W + ow * g.stride + kw]! += dy[o]! / (g.k * g.k);
        }
      }
    }
  }
  return dx;
}

// ---------------------------------------------------------------- normalisation and embedding

/** [N, C, S] around the channel axis 1 of [N, C, ...]. */
function channelSplit(shape: Shape): [number, number, number] {
  const N = shape[0]!;
  const C = shape[1]!;
  return [N, C, sizeOf(shape) / (N * C)];
}

/** Per-channel batch mean and biased variance of x [N, C, ...]. */
export function batchStats(x: Float64Array, shape: Shape): { mean: Float64Array; variance: Float64Array } {
  const [N, C, S] = channelSplit(shape);
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  const count = N * S;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let k = 0; k < S; k++) s += x[(n * C + c) * S + k]!;
    const m = s / count;
    let v = 0;
    for (let n = 0; n < N; n++) for (let k = 0; k < S; k++) v += (x[(n * C + c) * S + k]! - m) ** 2;
    mean[c] = m;
    variance[c] = v / count;
  }
  return { mean, variance };
}

/** (x - mean[c]) / sqrt(variance[c] + eps) * gamma[c] + beta[c] over x [N, C, ...]. */
export function batchNormWith(x: Float64Array, shape: Shape, mean: Float64Array, variance: Float64Array, gamma: Float64Array, beta: Float64Array, eps: number): Float64Array {
  const [, C, S] = channelSplit(shape);
  return x.map((v, i) => {
    const c = Math.floor(i / S) % C;
    return ((v - mean[c]!) / Math.sqrt(variance[c]! + eps)) * gamma[c]! + beta[c]!;
  });
}

/** BatchNorm in training mode: normalised by the batch statistics. */
export function batchNorm(x: Float64Array, shape: Shape, gamma: Float64Array, beta: Float64Array, eps = 1e-5): Float64Array {
  const { mean, variance } = batchStats(x, shape);
  return batchNormWith(x, shape, mean, variance, gamma, beta, eps);
}

/** Gradients [dx, dgamma, dbeta] of training-mode BatchNorm (through the batch statistics). */
export function batchNormGrad(x: Float64Array, shape: Shape, gamma: Float64Array, dy: Float64Array, eps = 1e-5): [Float64Array, Float64Array, Float64Array] {
  const [N, C, S] = channelSplit(shape);
  const count = N * S;
  const { mean, variance } = batchStats(x, shape);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const r = 1 / Math.sqrt(variance[c]! + eps);
    const idx: number[] = [];
    for (let n = 0; n < N; n++) for (let k = 0; k < S; k++) idx.push((n * C + c) * S + k);
    let sdy = 0;
    let sdyx = 0;
    for (const i of idx) {
      sdy += dy[i]!;
      sdyx += dy[i]! * (x[i]! - mean[c]!) * r;
    }
    dgamma[c] = sdyx;
    dbeta[c] = sdy;
    for (const i of idx) {
      const xhat = (x[i]! - mean[c]!) * r;
      dx[i] = gamma[c]! * r * (dy[i]! - sdy / count - (xhat * sdyx) / count);
    }
  }
  return [dx, dgamma, dbeta];
}

/** Gradients [dx, dgamma, dbeta] of inference-mode BatchNorm (running statistics are constants). */
export function batchNormInferenceGrad(
  x: Float64Array,
  shape: Shape,
  mean: Float64Array,
  variance: Float64Array,
  gamma: Float64Array,
  dy: Float64Array,
  eps = 1e-5,
): [Float64Array, Float64Array, Float64Array] {
  const [, C, S] = channelSplit(shape);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  x.forEach((v, i) => {
    const c = Math.floor(i / S) % C;
    const r = 1 / Math.sqrt(variance[c]! + eps);
    dx[i] = dy[i]! * gamma[c]! * r;
    dgamma[c] += dy[i]! * (v - mean[c]!) * r;
    dbeta[c] += dy[i]!;
  });
  return [dx, dgamma, dbeta];
}

/** Running averages after training steps on the given batches (PyTorch: unbiased variance). */
export function batchNormRunning(
  batches: Float64Array[],
  shape: Shape,
  runningMean: Float64Array,
  runningVar: Float64Array,
  momentum = 0.1,
): { mean: Float64Array; variance: Float64Array } {
  const [N, , S] = channelSplit(shape);
  const count = N * S;
  const rm = runningMean.slice();
  const rv = runningVar.slice();
  for (const x of batches) {
    const { mean, variance } = batchStats(x, shape);
    for (let c = 0; c < rm.length; c++) {
      rm[c] = (1 - momentum) * rm[c]! + momentum * mean[c]!;
      rv[c] = (1 - momentum) * rv[c]! + momentum * variance[c]! * (count / (count - 1));
    }
  }
  return { mean: rm, variance: rv };
}

/** LayerNorm over rows of length D. */
export function layerNorm(x: Float64Array, D: number, gamma: Float64Array, beta: Float64Array, eps = 1e-5): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += x[r * D + j]!;
    const m = s / D;
    let v = 0;
    for (let j = 0; j < D; j++) v += (x[r * D + j]! - m) ** 2;
    const rstd = 1 / Math.sqrt(v / D + eps);
    for (let j = 0; j < D; j++) out[r * D + j] = (x[r * D + j]! - m) * rstd * gamma[j]! + beta[j]!;
  }
  return out;
}

/** Gradients [dx, dgamma, dbeta] of LayerNorm over rows of length D. */
export function layerNormGrad(x: Float64Array, D: number, gamma: Float64Array, dy: Float64Array, eps = 1e-5): [Float64Array, Float64Array, Float64Array] {
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(D);
  const dbeta = new Float64Array(D);
  for (let r = 0; r < x.length / D; r++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += x[r * D + j]!;
    const m = s / D;
    let v = 0;
    for (let j = 0; j < D; j++) v += (x[r * D + j]! - m) ** 2;
    const rstd = 1 / Math.sqrt(v / D + eps);
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < D; j++) {
      const i = r * D + j;
      const xhat = (x[i]! - m) * rstd;
      const g = dy[i]! * gamma[j]!;
      sg += g;
      sgx += g * xhat;
      dgamma[j] += dy[i]! * xhat;
      dbeta[j] += dy[i]!;
    }
    for (let j = 0; j < D; j++) {
      const i = r * D + j;
      const xhat = (x[i]! - m) * rstd;
      dx[i] = rstd * (dy[i]! * gamma[j]! - sg / D - (xhat * sgx) / D);
    }
  }
  return [dx, dgamma, dbeta];
}

/**
 * Rows of table [vocab, dim] gathered by indices: [indices.length * dim]. An index that is not an
 * integer in [0, vocab) gives a row of NaN.
 */
export function embedding(indices: ArrayLike<number>, table: Float64Array, dim: number): Float64Array {
  const vocab = table.length / dim;
  const out = new Float64Array(indices.length * dim);
  for (let p = 0; p < indices.length; p++) {
    const v = indices[p]!;
    const valid = Number.isInteger(v) && v >= 0 && v < vocab;
    for (let d = 0; d < dim; d++) out[p * dim + d] = valid ? table[v * dim + d]! : NaN;
  }
  return out;
}

/** Gradient for the table: dy rows added into the rows their positions picked (repeats accumulate; invalid indices add nothing). */
export function embeddingGrad(indices: ArrayLike<number>, vocab: number, dim: number, dy: Float64Array): Float64Array {
  const g = new Float64Array(vocab * dim);
  for (let p = 0; p < indices.length; p++) {
    const v = indices[p]!;
    if (!Number.isInteger(v) || v < 0 || v >= vocab) continue;
    for (let d = 0; d < dim; d++) g[v * dim + d] += dy[p * dim + d]!;
  }
  return g;
}

// ---------------------------------------------------------------- softmax and distillation

/** Row-wise softmax of [rows, cols], around the row max. */
export function softmax(x: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(x[r * cols + c]! - m) / s;
  }
  return y;
}

/** dx_c = y_c * (dy_c - sum_k dy_k y_k) per row. */
export function softmaxGrad(x: Float64Array, rows: number, cols: number, dy: Float64Array): Float64Array {
  const y = softmax(x, rows, cols);
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let d = 0;
    for (let c = 0; c < cols; c++) d += dy[r * cols + c]! * y[r * cols + c]!;
    for (let c = 0; c < cols; c++) dx[r * cols + c] = y[r * cols + c]! * (dy[r * cols + c]! - d);
  }
  return dx;
}

/**
 * alpha T^2 mean_r KL(softmax(teacher_r / T) || softmax(student_r / T)) + (1 - alpha) mean_r CE(targets_r, softmax(student_r)),
 * with KL summed directly as sum_c p_c (log p_c - log q_c) (not as a difference of cross-entropies, as the engine does).
 */
export function distillationLoss(student: Float64Array, teacher: Float64Array, targets: Float64Array, rows: number, cols: number, temperature: number, alpha: number): number {
  const logSoftmax = (x: Float64Array, r: number): Float64Array => {
    const row = x.subarray(r * cols, (r + 1) * cols).map((v) => v / temperature);
    const m = Math.max(...row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    return row.map((v) => v - lse);
  };
  let kl = 0;
  for (let r = 0; r < rows; r++) {
    const lp = logSoftmax(teacher, r);
    const lq = logSoftmax(student, r);
    for (let c = 0; c < cols; c++) kl += Math.exp(lp[c]!) * (lp[c]! - lq[c]!);
  }
  const hard = softmaxCrossEntropy(student, targets, rows, cols);
  return alpha * temperature * temperature * (kl / rows) + (1 - alpha) * hard;
}

// ---------------------------------------------------------------- multi-task combinations

/** The Gram matrix [T, T] of a stack [T, n]: G[i][j] = sum_k x[i, k] x[j, k]. */
export function gram(x: Float64Array, T: number): Float64Array {
  const n = x.length / T;
  const g = new Float64Array(T * T);
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += x[i * n + k]! * x[j * n + k]!;
      g[i * T + j] = s;
    }
  }
  return g;
}

/** sum_k w_k x[k] for a stack x [K, P]: [P]. */
export function weightedSum(x: Float64Array, K: number, w: ArrayLike<number>): Float64Array {
  const P = x.length / K;
  const out = new Float64Array(P);
  for (let k = 0; k < K; k++) for (let j = 0; j < P; j++) out[j] += w[k]! * x[k * P + j]!;
  return out;
}

/** d/dx of sum(dy * weightedSum(x, w)): dx[k, j] = w_k dy[j]. */
export function weightedSumGrad(K: number, w: ArrayLike<number>, dy: Float64Array): Float64Array {
  const P = dy.length;
  const dx = new Float64Array(K * P);
  for (let k = 0; k < K; k++) for (let j = 0; j < P; j++) dx[k * P + j] = w[k]! * dy[j]!;
  return dx;
}

/** out[b, f] = sum_e gates[b, e] experts[e, b, f] for experts [E, B, F] and gates [B, E]. */
export function mixture(experts: Float64Array, gates: Float64Array, E: number, B: number, F: number): Float64Array {
  const out = new Float64Array(B * F);
  for (let e = 0; e < E; e++) for (let b = 0; b < B; b++) for (let f = 0; f < F; f++) out[b * F + f] += gates[b * E + e]! * experts[(e * B + b) * F + f]!;
  return out;
}

/** Gradients of mixture: [d(experts) [E, B, F], d(gates) [B, E]]. */
export function mixtureGrad(experts: Float64Array, gates: Float64Array, E: number, B: number, F: number, dy: Float64Array): [Float64Array, Float64Array] {
  const dExperts = new Float64Array(E * B * F);
  const dGates = new Float64Array(B * E);
  for (let e = 0; e < E; e++) {
    for (let b = 0; b < B; b++) {
      for (let f = 0; f < F; f++) {
        const i = (e * B + b) * F + f;
        dExperts[i] = gates[b * E + e]! * dy[b * F + f]!;
        dGates[b * E + e] += experts[i]! * dy[b * F + f]!;
      }
    }
  }
  return [dExperts, dGates];
}

// ---------------------------------------------------------------- federated aggregation (stacks x [K, P])

/** sum_k w_k x[k] / sum_k w_k (Flower's aggregate). */
export function weightedAverage(x: Float64Array, K: number, w: ArrayLike<number>): Float64Array {
  let total = 0;
  for (let k = 0; k < K; k++) total += w[k]!;
  return weightedSum(x, K, w).map((v) => v / total);
}

/** Column j's K values in ascending order (NaN last, as numpy's sort). */
function sortedColumn(x: Float64Array, K: number, j: number): number[] {
  const P = x.length / K;
  const col = Array.from({ length: K }, (_, k) => x[k * P + j]!);
  return col.sort((a, b) => (Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a - b));
}

/** numpy.median(x, axis=0). */
export function median(x: Float64Array, K: number): Float64Array {
  const P = x.length / K;
  return Float64Array.from({ length: P }, (_, j) => {
    const s = sortedColumn(x, K, j);
    return K % 2 === 1 ? s[(K - 1) / 2]! : (s[K / 2 - 1]! + s[K / 2]!) / 2;
  });
}

/** scipy.stats.trim_mean(x, proportiontocut, axis=0). */
export function trimMean(x: Float64Array, K: number, proportiontocut: number): Float64Array {
  const P = x.length / K;
  const low = Math.trunc(proportiontocut * K);
  return Float64Array.from({ length: P }, (_, j) => {
    const kept = sortedColumn(x, K, j).slice(low, K - low);
    return kept.reduce((s, v) => s + v, 0) / kept.length;
  });
}

/** Flower's _compute_distances: D[i][j] = ||x[i] - x[j]||^2. */
export function squaredDistances(x: Float64Array, K: number): Float64Array {
  const P = x.length / K;
  const d = new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      let s = 0;
      for (let n = 0; n < P; n++) s += (x[i * P + n]! - x[j * P + n]!) ** 2;
      d[i * K + j] = s;
    }
  }
  return d;
}

/** Flower's aggregate_krum: the indices Krum (toKeep 0: one) or Multi-Krum keeps, lowest score first. */
export function krumChoice(x: Float64Array, K: number, numMalicious: number, toKeep: number): number[] {
  const d = squaredDistances(x, K);
  const closest = Math.max(1, K - numMalicious - 2);
  const scores = Array.from({ length: K }, (_, i) => {
    const row = Array.from(d.subarray(i * K, (i + 1) * K)).sort((a, b) => a - b);
    return row.slice(1, closest + 1).reduce((s, v) => s + v, 0); // row[0] is the 0 to itself
  });
  const order = scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  return order.slice(0, Math.max(1, toKeep));
}

// ---------------------------------------------------------------- recurrent cells

export type RecurrentCellName = 'lstm' | 'cifg' | 'gru';

/** The inputs of the recurrent op: gatesX [B, T, G*H], h0 [B, H], c0 [B, H] (LSTM, CIFG), W_hh [G*H, H], b_hh [G*H]. */
export interface RecurrentInputs {
  cell: RecurrentCellName;
  B: number;
  T: number;
  H: number;
  gatesX: Float64Array;
  h0: Float64Array;
  c0: Float64Array | null;
  weight: Float64Array;
  bias: Float64Array | null;
}

const sig = (v: number) => 1 / (1 + Math.exp(-v));

/** Per step and row, the activations (PyTorch's gate order) and the states, unrolled in float64. */
function recurrentSteps(r: RecurrentInputs) {
  const { cell, B, T, H } = r;
  const G = cell === 'lstm' ? 4 : 3;
  const out = new Float64Array(B * T * H);
  const cells = new Float64Array(B * T * H);
  const acts = new Float64Array(B * T * G * H); // lstm i f g o; cifg f g o; gru r z n
  const hn = new Float64Array(B * T * H); // gru: W_hn h + b_hn
  const prevH = (b: number, t: number, k: number) => (t === 0 ? r.h0[b * H + k]! : out[(b * T + t - 1) * H + k]!);
  const prevC = (b: number, t: number, k: number) => (t === 0 ? r.c0![b * H + k]! : cells[(b * T + t - 1) * H + k]!);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const row = b * T + t;
      for (let j = 0; j < H; j++) {
        const a = (g: number) => {
          let s = r.bias ? r.bias[g * H + j]! : 0;
          for (let k = 0; k < H; k++) s += prevH(b, t, k) * r.weight[(g * H + j) * H + k]!;
          return s;
        };
        const x = (g: number) => r.gatesX[row * G * H + g * H + j]!;
        const at = row * G * H + j;
        if (cell === 'gru') {
          const rg = sig(x(0) + a(0));
          const z = sig(x(1) + a(1));
          hn[row * H + j] = a(2);
          const n = Math.tanh(x(2) + rg * a(2));
          out[row * H + j] = (1 - z) * n + z * prevH(b, t, j);
          [acts[at], acts[at + H], acts[at + 2 * H]] = [rg, z, n];
        } else {
          const o0 = cell === 'lstm' ? 1 : 0;
          const f = sig(x(o0) + a(o0));
          const g = Math.tanh(x(o0 + 1) + a(o0 + 1));
          const o = sig(x(o0 + 2) + a(o0 + 2));
          const i = cell === 'lstm' ? sig(x(0) + a(0)) : 1 - f;
          const c = f * prevC(b, t, j) + i * g;
          cells[row * H + j] = c;
          out[row * H + j] = o * Math.tanh(c);
          if (cell === 'lstm') acts[at] = i;
          [acts[at + o0 * H], acts[at + (o0 + 1) * H], acts[at + (o0 + 2) * H]] = [f, g, o];
        }
      }
    }
  }
  return { out, cells, acts, hn, prevH, prevC, G };
}

/** The hidden states [B, T, H] of the recurrence, and the final cell state [B, H] (LSTM, CIFG). */
export function recurrent(r: RecurrentInputs): { output: Arr; c: Float64Array | null } {
  const { out, cells } = recurrentSteps(r);
  const c = r.cell === 'gru' ? null : Float64Array.from({ length: r.B * r.H }, (_, i) => cells[(Math.floor(i / r.H) * r.T + r.T - 1) * r.H + (i % r.H)]!);
  return { output: { data: out, shape: [r.B, r.T, r.H] }, c };
}

/** Backpropagation through time of recurrent(): gradients of sum(output * dy) for gatesX, h0, c0, W_hh, b_hh. */
export function recurrentGrad(r: RecurrentInputs, dy: Float64Array) {
  const { cell, B, T, H } = r;
  const { cells, acts, hn, prevH, prevC, G } = recurrentSteps(r);
  const dGx = new Float64Array(B * T * G * H);
  const dW = new Float64Array(G * H * H);
  const dB = new Float64Array(G * H);
  const dh0 = new Float64Array(B * H);
  const dc0 = new Float64Array(B * H);
  const dhNext = new Float64Array(B * H); // d(h_t) from step t+1
  const dcNext = new Float64Array(B * H);
  for (let t = T - 1; t >= 0; t--) {
    const dhPrev = new Float64Array(B * H);
    const dcPrev = new Float64Array(B * H);
    for (let b = 0; b < B; b++) {
      const row = b * T + t;
      for (let j = 0; j < H; j++) {
        const dh = dy[row * H + j]! + dhNext[b * H + j]!;
        const at = row * G * H + j;
        const dPre = new Float64Array(G); // input side
        const dHH = new Float64Array(G); // recurrent side
        if (cell === 'gru') {
          const [rg, z, n] = [acts[at]!, acts[at + H]!, acts[at + 2 * H]!];
          const dn = dh * (1 - z) * (1 - n * n);
          dPre[0] = dHH[0] = dn * hn[row * H + j]! * rg * (1 - rg);
          dPre[1] = dHH[1] = dh * (prevH(b, t, j) - n) * z * (1 - z);
          dPre[2] = dn;
          dHH[2] = dn * rg;
          dhPrev[b * H + j]! += dh * z;
        } else {
          const o0 = cell === 'lstm' ? 1 : 0;
          const [f, g, o] = [acts[at + o0 * H]!, acts[at + (o0 + 1) * H]!, acts[at + (o0 + 2) * H]!];
          const i = cell === 'lstm' ? acts[at]! : 1 - f;
          const tc = Math.tanh(cells[row * H + j]!);
          const dc = dcNext[b * H + j]! + dh * o * (1 - tc * tc);
          const di = dc * g;
          if (cell === 'lstm') dPre[0] = di * i * (1 - i);
          dPre[o0] = (dc * prevC(b, t, j) - (cell === 'cifg' ? di : 0)) * f * (1 - f);
          dPre[o0 + 1] = dc * i * (1 - g * g);
          dPre[o0 + 2] = dh * tc * o * (1 - o);
          dHH.set(dPre);
          dcPrev[b * H + j] = dc * f;
        }
        for (let gate = 0; gate < G; gate++) {
          const unit = gate * H + j;
          dGx[row * G * H + unit] = dPre[gate]!;
          dB[unit]! += dHH[gate]!;
          for (let k = 0; k < H; k++) {
            dW[unit * H + k]! += dHH[gate]! * prevH(b, t, k);
            dhPrev[b * H + k]! += dHH[gate]! * r.weight[unit * H + k]!;
          }
        }
      }
    }
    dhNext.set(dhPrev);
    dcNext.set(dcPrev);
  }
  dh0.set(dhNext);
  dc0.set(dcNext);
  return { gatesX: dGx, h0: dh0, c0: r.cell === 'gru' ? null : dc0, weight: dW, bias: r.bias ? dB : null };
}

/** One layer's weights of a stacked LSTM or GRU, as PyTorch lays them out. */
export interface RecurrentLayerWeights {
  weightIH: Float64Array;
  weightHH: Float64Array;
  biasIH: Float64Array | null;
  biasHH: Float64Array | null;
}

/**
 * A stack of recurrent layers over x [B, T, in] (batch first) from the initial states (zeros
 * when null): the last layer's output, each layer's final h and c, and `grad(dy)`, the
 * gradients of sum(output * dy) for every layer's weights.
 */
export function recurrentStack(cell: RecurrentCellName, x: Float64Array, B: number, T: number, H: number, layers: RecurrentLayerWeights[], h0: Float64Array[] | null, c0: Float64Array[] | null) {
  const G = cell === 'lstm' ? 4 : 3;
  const steps: { input: Float64Array; inFeatures: number; cellInputs: RecurrentInputs }[] = [];
  const h: Float64Array[] = [];
  const c: Float64Array[] = [];
  let input = x;
  layers.forEach((w, l) => {
    const inFeatures = w.weightIH.length / (G * H);
    const gatesX = matmul(input, [B * T, inFeatures], w.weightIH, [G * H, inFeatures], false, true).data;
    if (w.biasIH) for (let r = 0; r < B * T; r++) for (let u = 0; u < G * H; u++) gatesX[r * G * H + u]! += w.biasIH[u]!;
    const cellInputs: RecurrentInputs = {
      cell,
      B,
      T,
      H,
      gatesX,
      h0: h0?.[l] ?? new Float64Array(B * H),
      c0: cell === 'gru' ? null : (c0?.[l] ?? new Float64Array(B * H)),
      weight: w.weightHH,
      bias: w.biasHH,
    };
    const result = recurrent(cellInputs);
    steps.push({ input, inFeatures, cellInputs });
    h.push(slice(result.output.data, [B, T, H], 1, T - 1, 1).data);
    if (result.c) c.push(result.c);
    input = result.output.data;
  });
  const grad = (dy: Float64Array): RecurrentLayerWeights[] => {
    const grads: RecurrentLayerWeights[] = [];
    let d = dy;
    for (let l = layers.length - 1; l >= 0; l--) {
      const { input: layerInput, inFeatures, cellInputs } = steps[l]!;
      const g = recurrentGrad(cellInputs, d);
      const biasIH = layers[l]!.biasIH ? reduce(g.gatesX, [B * T, G * H], 0, false).data : null;
      grads[l] = { weightIH: matmul(g.gatesX, [B * T, G * H], layerInput, [B * T, inFeatures], true).data, weightHH: g.weight, biasIH, biasHH: g.bias };
      d = matmul(g.gatesX, [B * T, G * H], layers[l]!.weightIH, [G * H, inFeatures]).data;
    }
    return grads;
  };
  return { output: { data: input, shape: [B, T, H] } as Arr, h, c: cell === 'gru' ? null : c, grad };
}
