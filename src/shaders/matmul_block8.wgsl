// C = op(A) . op(B) (+ bias, activation), each invocation computing one 8x8 block of C from
// registers, as four 4x4 blocks: per step of 4 along K it loads two 4x4 tiles of op(A) and two of
// op(B) and does 256 multiply-adds, twice the work per load of matmul.wgsl's 4x4 block. Operands,
// layouts, batching and the epilogue: lib/matmul_operands.wgsl.
#import "lib/matmul_operands.wgsl"
override WG_X: u32 = 8;
override WG_Y: u32 = 8;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.y * 8u; // first row of this block of C
  let col = gid.x * 8u; // first column
  if (r >= dims.M || col >= dims.N) { return; }
  let a0 = dims.a_offset + gid.z * dims.a_stride;
  let b0 = dims.b_offset + gid.z * dims.b_stride;
  // acc_ij: rows r + 4i .., columns col + 4j ..
  var acc00 = mat4x4<f32>();
  var acc01 = mat4x4<f32>();
  var acc10 = mat4x4<f32>();
  var acc11 = mat4x4<f32>();
  let k_end = aligned_k_end();
  for (var k = 0u; k < k_end; k += 4u) {
    let top = a_tile(a0 >> 2u, r, k);
    let bottom = a_tile(a0 >> 2u, r + 4u, k);
    let left = b_tile(b0 >> 2u, k, col);
    let right = b_tile(b0 >> 2u, k, col + 4u);
    acc00 += left * top;
    acc01 += right * top;
    acc10 += left * bottom;
    acc11 += right * bottom;
  }
  for (var k = k_end; k < dims.K; k++) {
    let top = a_column(a0, r, k);
    let bottom = a_column(a0, r + 4u, k);
    let left = b_row(b0, k, col);
    let right = b_row(b0, k, col + 4u);
    acc00 += outer(top, left);
    acc01 += outer(top, right);
    acc10 += outer(bottom, left);
    acc11 += outer(bottom, right);
  }
  store_block(acc00, gid.z, r, col);
  store_block(acc01, gid.z, r, col + 4u);
  store_block(acc10, gid.z, r + 4u, col);
  store_block(acc11, gid.z, r + 4u, col + 4u);
}
