// C = op(A) . op(B) (+ bias, activation), each invocation computing one 4x4 block of C from
// registers: per step of 4 along K it loads a 4x4 tile of op(A) and one of op(B) as four vec4s each
// and does 64 multiply-adds as one mat4x4 product. The base variant: the others (matmul_block8,
// matmul_tiled, matmul_subgroup) are tried by the autotuner. Operands, layouts, batching and the
// epilogue: lib/matmul_operands.wgsl.
#import "lib/matmul_operands.wgsl"
override WG_X: u32 = 8;
override WG_Y: u32 = 8;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.y * 4u; // first row of this block of C
  let col = gid.x * 4u; // first column
  if (r >= dims.M || col >= dims.N) { return; }
  let a0 = dims.a_offset + gid.z * dims.a_stride;
  let b0 = dims.b_offset + gid.z * dims.b_stride;
  // acc[i] is row r + i of the block, as a vec4 over its 4 columns.
  var acc = mat4x4<f32>();
  let k_end = aligned_k_end();
  for (var k = 0u; k < k_end; k += 4u) {
    // acc[i] += sum_t op(A)[r + i, k + t] * op(B)[k + t, col ..]
    acc += b_tile(b0 >> 2u, k, col) * a_tile(a0 >> 2u, r, k);
  }
  for (var k = k_end; k < dims.K; k++) {
    acc += outer(a_column(a0, r, k), b_row(b0, k, col));
  }
  store_block(acc, gid.z, r, col);
}
