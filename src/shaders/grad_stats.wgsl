// Per row r of the flat gradients (rows of row_size elements from row_start), over the
// parameters an optimizer updates this step (its segment table, optimizer_step.wgsl): the sum of
// squares, added to stats[2 r], and the number of NaN or infinite elements, added to
// stats[2 r + 1] (an optimizer over several stores adds their parts). NaN propagates into the
// sum. One workgroup per row.
#import "lib/workgroup_reduce.wgsl"
#import "lib/float.wgsl"

override WG: u32 = 256;

struct Params { row_size: u32, row_start: u32, segments: u32 }

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> segment: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let r = wid.x;
  let base = (p.row_start + r) * p.row_size;
  var squares = 0.0;
  var bad = 0.0;
  for (var s = 0u; s < p.segments; s++) {
    let seg = segment[2u * s];
    for (var j = lid.x; j < seg.y - seg.x; j += WG) {
      let g = grad[base + seg.z + j];
      squares += g * g;
      bad += select(1.0, 0.0, is_finite(g));
    }
  }
  squares = reduce_sum(squares, lid.x);
  bad = reduce_sum(bad, lid.x);
  if (lid.x == 0u) {
    stats[2u * r] += squares;
    stats[2u * r + 1u] += bad;
  }
}
