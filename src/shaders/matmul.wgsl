// C[M, N] = op(A) . op(B). op(A) is A stored [M, K], or with TRANS_A, A stored [K, M] and used
// transposed; op(B) is B stored [K, N], or with TRANS_B, B stored [N, K]. The backward of
// C = A . B needs dA = dC . B^T (TRANS_B) and dB = A^T . dC (TRANS_A), so all three are one kernel.
//
// Each invocation computes a 4x4 block of C. Per step of 4 along K it loads a 4x4 tile of op(A)
// and one of op(B) into registers as four vec4s each, along whichever dimension is contiguous in
// memory, and does 64 multiply-adds as one mat4x4 product. That needs ALIGNED: every load one
// whole vec4, so the stored rows of A and B (K, or M with TRANS_A; N, or K with TRANS_B) and their
// offsets and strides are multiples of 4. Rows of a block past M or N (a batch of 10) load the
// last row again and are not stored; with TRANS_A and without TRANS_B the last K % 4 steps take
// the scalar path. Other shapes take that path throughout: one k at a time, with bounds checks.
//
// Batched: workgroup z = i computes C_i = op(A_i) . op(B_i), where operand X_i starts at element
// X_offset + i * X_stride of its buffer (stride 0: every batch reads the same matrix). That lets B
// be one slot of a [K, P] replica weight block (replica i's weight at i * P + slot offset) and C
// the same slot of its gradient block.
#import "lib/activation.wgsl"
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ALIGNED: bool = false;
override WG_X: u32 = 8;
override WG_Y: u32 = 8;
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

fn epilogue(v: f32, bias_at: u32) -> f32 {
  var z = v;
  if (HAS_BIAS) { z += bias[bias_at]; }
  return act_value(ACT, z, dims.alpha);
}

// v[i] without a dynamically indexed vector (which compiles to slow code on some drivers).
fn lane(v: vec4<f32>, i: u32) -> f32 {
  return select(select(v.x, v.y, i == 1u), select(v.z, v.w, i == 3u), i >= 2u);
}

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

// op(A)[row, k] and op(B)[k, col] for the unaligned path.
fn op_a(base: u32, row: u32, k: u32) -> f32 {
  if (TRANS_A) { return a_at(base, k, row, dims.K, dims.M); }
  return a_at(base, row, k, dims.M, dims.K);
}

fn op_b(base: u32, k: u32, col: u32) -> f32 {
  if (TRANS_B) { return b_at(base, col, k, dims.N, dims.K); }
  return b_at(base, k, col, dims.K, dims.N);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let M = dims.M;
  let N = dims.N;
  let K = dims.K;
  let r = gid.y * 4u; // first row of this block of C
  let c0 = gid.x * 4u; // first column
  if (r >= M || c0 >= N) { return; }
  // This batch's matrices; in the aligned path, in vec4s.
  let a0 = dims.a_offset + gid.z * dims.a_stride;
  let b0 = dims.b_offset + gid.z * dims.b_stride;
  let av = a0 >> 2u;
  let bv = b0 >> 2u;

  // acc[i] is row r + i of the block, as a vec4 over its 4 columns.
  var acc = mat4x4<f32>();
  var k_scalar = 0u; // where the scalar path starts
  if (ALIGNED) {
    // Rows of op(A) and columns of op(B) this block loads along K, clamped into the matrix.
    let ra = min(vec4(r, r + 1u, r + 2u, r + 3u), vec4(M - 1u));
    let cb4 = min(vec4(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4(N - 1u));
    k_scalar = K & ~3u;
    for (var k = 0u; k < k_scalar; k += 4u) {
      // a_rows[i] = op(A)[r + i, k .. k + 3]
      var a_rows: mat4x4<f32>;
      if (TRANS_A) {
        a_rows = transpose(mat4x4<f32>(a[av + ((k * M + r) >> 2u)], a[av + (((k + 1u) * M + r) >> 2u)], a[av + (((k + 2u) * M + r) >> 2u)], a[av + (((k + 3u) * M + r) >> 2u)]));
      } else {
        a_rows = mat4x4<f32>(a[av + ((ra.x * K + k) >> 2u)], a[av + ((ra.y * K + k) >> 2u)], a[av + ((ra.z * K + k) >> 2u)], a[av + ((ra.w * K + k) >> 2u)]);
      }
      // b_rows[t] = op(B)[k + t, c0 .. c0 + 3]
      var b_rows: mat4x4<f32>;
      if (TRANS_B) {
        b_rows = transpose(mat4x4<f32>(b[bv + ((cb4.x * K + k) >> 2u)], b[bv + ((cb4.y * K + k) >> 2u)], b[bv + ((cb4.z * K + k) >> 2u)], b[bv + ((cb4.w * K + k) >> 2u)]));
      } else {
        b_rows = mat4x4<f32>(b[bv + ((k * N + c0) >> 2u)], b[bv + (((k + 1u) * N + c0) >> 2u)], b[bv + (((k + 2u) * N + c0) >> 2u)], b[bv + (((k + 3u) * N + c0) >> 2u)]);
      }
      // acc[i] += sum_t a_rows[i][t] * b_rows[t]
      acc += b_rows * a_rows;
    }
  }
  // One k at a time, elements gathered with bounds checks.
  for (var k = k_scalar; k < K; k++) {
    let a_col = vec4(op_a(a0, r, k), op_a(a0, r + 1u, k), op_a(a0, r + 2u, k), op_a(a0, r + 3u, k));
    let b_row = vec4(op_b(b0, k, c0), op_b(b0, k, c0 + 1u), op_b(b0, k, c0 + 2u), op_b(b0, k, c0 + 3u));
    acc += mat4x4<f32>(a_col.x * b_row, a_col.y * b_row, a_col.z * b_row, a_col.w * b_row);
  }

  let cb = dims.c_offset + gid.z * dims.c_stride;
  let biasb = dims.bias_offset + gid.z * dims.bias_stride;
  for (var i = 0u; i < 4u; i++) {
    let row = r + i;
    if (row < M) {
      for (var j = 0u; j < 4u; j++) {
        if (c0 + j < N) { c[cb + row * N + c0 + j] = epilogue(acc[i][j], biasb + c0 + j); }
      }
    }
  }
}
