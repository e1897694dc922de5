// A sum of (f32, f32) pairs over the WG invocations of a workgroup in two levels, WG -> WG/16 -> 1:
// two barriers, where a tree over 64 invocations has six (barriers are slow on CPU-emulated
// adapters). The importing shader declares `override WG: u32` (a multiple of 16, at most 256);
// every invocation calls it in uniform control flow, and the total is valid in invocation 0 only.
var<workgroup> pair_level0: array<vec2<f32>, WG>;
var<workgroup> pair_level1: array<vec2<f32>, WG / 16u>;

fn reduce_pairs(v: vec2<f32>, lid: u32) -> vec2<f32> {
  pair_level0[lid] = v;
  workgroupBarrier();
  if (lid < WG / 16u) {
    var s = vec2<f32>(0.0);
    for (var k = 0u; k < 16u; k++) {
      s += pair_level0[lid * 16u + k];
    }
    pair_level1[lid] = s;
  }
  workgroupBarrier();
  var total = vec2<f32>(0.0);
  if (lid == 0u) {
    for (var k = 0u; k < WG / 16u; k++) {
      total += pair_level1[k];
    }
  }
  return total;
}
