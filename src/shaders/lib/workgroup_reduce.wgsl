// Tree reductions over the WG invocations of a workgroup, through workgroup memory. The importing
// shader declares `override WG: u32` (a power of two), and every invocation of the workgroup calls
// these in uniform control flow (they hold barriers); each gets the result.
#import "lib/float.wgsl"

var<workgroup> scratch: array<f32, WG>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
  scratch[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { scratch[lid] += scratch[lid + s]; }
    workgroupBarrier();
  }
  let r = scratch[0];
  workgroupBarrier();
  return r;
}

// The maximum, NaN when any value is NaN.
fn reduce_max(v: f32, lid: u32) -> f32 {
  scratch[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) { scratch[lid] = max_nan(scratch[lid], scratch[lid + s]); }
    workgroupBarrier();
  }
  let r = scratch[0];
  workgroupBarrier();
  return r;
}

var<workgroup> scratch2: array<vec2<f32>, WG>;

// Two maxima in one tree (half the barriers of two reduce_max calls), NaN where any value of that
// component is NaN. The minimum of m is -(maximum of -m): reduce_max2(vec2(-lo, hi)).
fn reduce_max2(v: vec2<f32>, lid: u32) -> vec2<f32> {
  scratch2[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s /= 2u) {
    if (lid < s) {
      let a = scratch2[lid];
      let b = scratch2[lid + s];
      scratch2[lid] = vec2<f32>(max_nan(a.x, b.x), max_nan(a.y, b.y));
    }
    workgroupBarrier();
  }
  let r = scratch2[0];
  workgroupBarrier();
  return r;
}
