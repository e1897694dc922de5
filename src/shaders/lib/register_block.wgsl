// What the products that accumulate 4x4 blocks of C in registers share (the matmul variants and
// conv2d.wgsl): the rank-1 update column x row as a 4x4 block, m[i] = column[i] * row, and one
// element of a vec4 operand.
fn outer(column: vec4<f32>, row: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(column.x * row, column.y * row, column.z * row, column.w * row);
}

// v[i] without a dynamically indexed vector (which compiles to slow code on some drivers).
fn lane(v: vec4<f32>, i: u32) -> f32 {
  return select(select(v.x, v.y, i == 1u), select(v.z, v.w, i == 3u), i >= 2u);
}
