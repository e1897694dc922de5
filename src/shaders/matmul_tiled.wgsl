// C = op(A) . op(B) (+ bias, activation) with workgroup-memory tiling, the usual design on real
// GPUs: a workgroup of WG_X x WG_Y invocations computes a tile of 4 WG_Y rows and 4 WG_X columns
// of C. Per step of BK along K it stages the tile's op(A) [4 WG_Y, BK] and op(B) [BK, 4 WG_X] in
// workgroup memory, each element loaded once (with bounds checks, so any shape, layout or
// alignment), and each invocation then accumulates its 4x4 register block from there, so every
// loaded element serves 4 WG_X (or 4 WG_Y) blocks. The stages are scalar arrays: SwiftShader took
// 3x longer to compile vec4 stages written by component. Operands, layouts, batching and the
// epilogue: lib/matmul_operands.wgsl.
#import "lib/matmul_operands.wgsl"
override WG_X: u32 = 16;
override WG_Y: u32 = 16;
override BK: u32 = 16;

// a_stage[k * 4 WG_Y + m] = op(A)[tile row m, k]; b_stage[k * 4 WG_X + n] = op(B)[k, tile column n].
var<workgroup> a_stage: array<f32, BK * WG_Y * 4>;
var<workgroup> b_stage: array<f32, BK * WG_X * 4>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tile_rows = 4u * WG_Y;
  let tile_cols = 4u * WG_X;
  let row0 = wid.y * tile_rows;
  let col0 = wid.x * tile_cols;
  let a0 = dims.a_offset + wid.z * dims.a_stride;
  let b0 = dims.b_offset + wid.z * dims.b_stride;
  let threads = WG_X * WG_Y;
  let me = lid.y * WG_X + lid.x;
  var acc = mat4x4<f32>();
  // No early return: every invocation takes part in the staging and the barriers.
  for (var k0 = 0u; k0 < dims.K; k0 += BK) {
    // Consecutive invocations load consecutive elements of the stored matrix.
    for (var e = me; e < tile_rows * BK; e += threads) {
      var m = e / BK;
      var k = e % BK;
      if (TRANS_A) { m = e % tile_rows; k = e / tile_rows; }
      a_stage[k * tile_rows + m] = op_a(a0, row0 + m, k0 + k);
    }
    for (var e = me; e < tile_cols * BK; e += threads) {
      var n = e % tile_cols;
      var k = e / tile_cols;
      if (TRANS_B) { n = e / BK; k = e % BK; }
      b_stage[k * tile_cols + n] = op_b(b0, k0 + k, col0 + n);
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let ai = k * tile_rows + 4u * lid.y;
      let bi = k * tile_cols + 4u * lid.x;
      acc += outer(vec4(a_stage[ai], a_stage[ai + 1u], a_stage[ai + 2u], a_stage[ai + 3u]), vec4(b_stage[bi], b_stage[bi + 1u], b_stage[bi + 2u], b_stage[bi + 3u]));
    }
    workgroupBarrier();
  }
  store_block(acc, wid.z, row0 + 4u * lid.y, col0 + 4u * lid.x);
}
