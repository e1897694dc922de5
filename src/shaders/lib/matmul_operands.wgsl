// What every matmul variant (matmul*.wgsl) shares: the operands and their bindings, the loads of
// op(A) and op(B) and the fused epilogue. A variant decides only how invocations split C into
// blocks and where the operands are staged (registers, workgroup memory, subgroup lanes).
//
// C[M, N] = op(A) . op(B). op(A) is A stored [M, K], or with TRANS_A, A stored [K, M] and used
// transposed; op(B) is B stored [K, N], or with TRANS_B, B stored [N, K]. The backward of
// C = A . B needs dA = dC . B^T (TRANS_B) and dB = A^T . dC (TRANS_A), so all three are one kernel.
//
// Batched: workgroup z = i computes C_i = op(A_i) . op(B_i), where operand X_i starts at element
// X_offset + i * X_stride of its buffer (stride 0: every batch reads the same matrix). That lets B
// be one slot of a [K, P] replica weight block (replica i's weight at i * P + slot offset) and C
// the same slot of its gradient block.
//
// ALIGNED: the stored rows of A and B (K, or M with TRANS_A; N, or K with TRANS_B) and their
// offsets and strides are multiples of 4, so a_vec and b_vec load whole vec4s.
#import "lib/activation.wgsl"
#import "lib/register_block.wgsl"
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ALIGNED: bool = false;
// Fused epilogue (a dense layer's forward in one kernel): C = act(C + bias[col]), act one of the
// ops of lib/activation.wgsl whose derivative follows from the output (relu, leaky_relu with slope
// alpha > 0, sigmoid, tanh), so the backward needs no pre-activation tensor.
override HAS_BIAS: bool = false;
override ACT: u32 = ACT_NONE;

struct Dims {
  M: u32, N: u32, K: u32, alpha: f32,
  a_offset: u32, a_stride: u32, b_offset: u32, b_stride: u32,
  c_offset: u32, c_stride: u32, bias_offset: u32, bias_stride: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

// Element (row, col) of a stored matrix starting at element `base`, with `cols` columns, 0
// outside [rows, cols].
fn a_at(base: u32, row: u32, col: u32, rows: u32, cols: u32) -> f32 {
  let inside = row < rows && col < cols;
  let f = base + select(0u, row * cols + col, inside);
  return select(0.0, lane(a[f >> 2u], f & 3u), inside);
}

fn b_at(base: u32, row: u32, col: u32, rows: u32, cols: u32) -> f32 {
  let inside = row < rows && col < cols;
  let f = base + select(0u, row * cols + col, inside);
  return select(0.0, lane(b[f >> 2u], f & 3u), inside);
}

// op(A)[row, k] and op(B)[k, col] of the batch whose A starts at element a0 (B at b0), 0 outside.
fn op_a(a0: u32, row: u32, k: u32) -> f32 {
  if (TRANS_A) { return a_at(a0, k, row, dims.K, dims.M); }
  return a_at(a0, row, k, dims.M, dims.K);
}

fn op_b(b0: u32, k: u32, col: u32) -> f32 {
  if (TRANS_B) { return b_at(b0, col, k, dims.N, dims.K); }
  return b_at(b0, k, col, dims.K, dims.N);
}

// op(A)[r .. r + 3, k] and op(B)[k, c .. c + 3], element by element with bounds checks.
fn a_column(a0: u32, r: u32, k: u32) -> vec4<f32> {
  return vec4(op_a(a0, r, k), op_a(a0, r + 1u, k), op_a(a0, r + 2u, k), op_a(a0, r + 3u, k));
}

fn b_row(b0: u32, k: u32, col: u32) -> vec4<f32> {
  return vec4(op_b(b0, k, col), op_b(b0, k, col + 1u), op_b(b0, k, col + 2u), op_b(b0, k, col + 3u));
}

// ALIGNED loads of the 4x4 tile of op(A) at rows r .., columns k .. (k a multiple of 4), one vec4
// along whichever dimension is contiguous in memory: vector i is op(A)[r + i, k .. k + 3], or with
// TRANS_A stored row k + i, op(A)[r .. r + 3, k + i]. av is the batch's A in vec4s. Rows past M
// load the last row (or quad, with TRANS_A) again: callers compute them and do not store them.
fn a_vec(av: u32, r: u32, k: u32, i: u32) -> vec4<f32> {
  if (TRANS_A) { return a[av + (((k + i) * dims.M + min(r, dims.M - 4u)) >> 2u)]; }
  return a[av + ((min(r + i, dims.M - 1u) * dims.K + k) >> 2u)];
}

// The same for op(B) at rows k .., columns col ..: vector t is op(B)[k + t, col .. col + 3], or
// with TRANS_B stored row col + t, op(B)[k .. k + 3, col + t].
fn b_vec(bv: u32, k: u32, col: u32, t: u32) -> vec4<f32> {
  if (TRANS_B) { return b[bv + ((min(col + t, dims.N - 1u) * dims.K + k) >> 2u)]; }
  return b[bv + (((k + t) * dims.N + min(col, dims.N - 4u)) >> 2u)];
}

// Rows of the tile as a_vec's vectors: a_rows(..)[i] = op(A)[r + i, k .. k + 3].
fn a_rows(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) -> mat4x4<f32> {
  let m = mat4x4<f32>(v0, v1, v2, v3);
  if (TRANS_A) { return transpose(m); }
  return m;
}

// b_rows(..)[t] = op(B)[k + t, col .. col + 3].
fn b_rows(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) -> mat4x4<f32> {
  let m = mat4x4<f32>(v0, v1, v2, v3);
  if (TRANS_B) { return transpose(m); }
  return m;
}

fn a_tile(av: u32, r: u32, k: u32) -> mat4x4<f32> {
  return a_rows(a_vec(av, r, k, 0u), a_vec(av, r, k, 1u), a_vec(av, r, k, 2u), a_vec(av, r, k, 3u));
}

fn b_tile(bv: u32, k: u32, col: u32) -> mat4x4<f32> {
  return b_rows(b_vec(bv, k, col, 0u), b_vec(bv, k, col, 1u), b_vec(bv, k, col, 2u), b_vec(bv, k, col, 3u));
}

// Where the ALIGNED path stops and the element-wise path takes the last K % 4 steps (only with
// TRANS_A and without TRANS_B can K be unaligned).
fn aligned_k_end() -> u32 {
  if (ALIGNED) { return dims.K & ~3u; }
  return 0u;
}

// Stores act(acc + bias) as C[r .. r + 3, col .. col + 3] of batch z (acc[i] is row r + i), the
// part inside [M, N].
fn store_block(acc: mat4x4<f32>, z: u32, r: u32, col: u32) {
  let cb = dims.c_offset + z * dims.c_stride;
  let biasb = dims.bias_offset + z * dims.bias_stride;
  for (var i = 0u; i < 4u; i++) {
    let row = r + i;
    if (row < dims.M) {
      for (var j = 0u; j < 4u; j++) {
        if (col + j < dims.N) {
          var v = acc[i][j];
          if (HAS_BIAS) { v += bias[biasb + col + j]; }
          c[cb + row * dims.N + col + j] = act_value(ACT, v, dims.alpha);
        }
      }
    }
  }
}
