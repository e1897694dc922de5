// C = op(A) . op(B) (+ bias, activation) sharing loads between subgroup lanes instead of through
// workgroup memory; only on devices with the `subgroups` feature and subgroups of 4 or more lanes.
// Four consecutive lanes of a subgroup (a quad) compute an 8x8 tile of C as four 4x4 register
// blocks, 2 x 2. Per step of 4 along K the quad needs op(A) [8, 4] and op(B) [4, 8], 8 vec4s each:
// each lane loads 2 of each and gets the 4 + 4 it needs from its quad by subgroupShuffle, half the
// loads of computing the blocks separately (matmul.wgsl). The element-wise path (unaligned
// operands, the last K % 4 steps) loads per lane without sharing. Operands, layouts, batching and
// the epilogue: lib/matmul_operands.wgsl.
enable subgroups;
#import "lib/matmul_operands.wgsl"
// Invocations per workgroup, a multiple of the largest subgroup size, and quads along the tile's
// columns: a workgroup computes a tile of 8 (WG / 4 / QX) rows and 8 QX columns of C.
override WG: u32 = 64;
override QX: u32 = 4;

// Hands each subgroup consecutive slots 0 .. WG - 1: which lanes form a subgroup is up to the
// device, so quads are numbered from the lanes, never from local_invocation_index.
var<workgroup> next_slot: atomic<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
  // The barrier orders the counter's zero-initialisation before every subgroup's atomicAdd: without
  // it SwiftShader let subgroups add to the counter before the others had zeroed it.
  workgroupBarrier();
  var first = 0u;
  if (subgroupElect()) { first = atomicAdd(&next_slot, size); }
  // Subgroup sizes are multiples of 4, so every quad lies in one subgroup.
  let quad = (subgroupBroadcastFirst(first) + lane) / 4u;
  let quad_rows = WG / 4u / QX;
  let p = lane & 3u; // place in the quad: (p >> 1, p & 1) is its block's row and column in the tile
  let quad_lane0 = lane & ~3u;
  let strip_r = wid.y * 8u * quad_rows + (quad / QX) * 8u; // the quad's 8 rows ..
  let strip_c = wid.x * 8u * QX + (quad % QX) * 8u; // .. and 8 columns
  let upper = (p >> 1u) == 0u;
  let left = (p & 1u) == 0u;
  let r = strip_r + 4u * (p >> 1u);
  let col = strip_c + 4u * (p & 1u);
  let a0 = dims.a_offset + wid.z * dims.a_stride;
  let b0 = dims.b_offset + wid.z * dims.b_stride;
  var acc = mat4x4<f32>();
  // No early return: every lane of the quad takes part in the shuffles.
  let k_end = aligned_k_end();
  for (var k = 0u; k < k_end; k += 4u) {
    // Lane p loads vector p of both 4-row halves of the quad's op(A) tile and of both 4-column
    // halves of its op(B) tile; vector i of a lane's own half comes from lane i of the quad.
    let a_top = a_vec(a0 >> 2u, strip_r, k, p);
    let a_bottom = a_vec(a0 >> 2u, strip_r + 4u, k, p);
    let b_left = b_vec(b0 >> 2u, k, strip_c, p);
    let b_right = b_vec(b0 >> 2u, k, strip_c + 4u, p);
    var av: array<vec4<f32>, 4>;
    var bv: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
      av[i] = select(subgroupShuffle(a_bottom, quad_lane0 + i), subgroupShuffle(a_top, quad_lane0 + i), upper);
      bv[i] = select(subgroupShuffle(b_right, quad_lane0 + i), subgroupShuffle(b_left, quad_lane0 + i), left);
    }
    acc += b_rows(bv[0], bv[1], bv[2], bv[3]) * a_rows(av[0], av[1], av[2], av[3]);
  }
  for (var k = k_end; k < dims.K; k++) {
    acc += outer(a_column(a0, r, k), b_row(b0, k, col));
  }
  store_block(acc, wid.z, r, col);
}
