// Sum over the middle axis of x viewed as [outer, len, inner], times scale (1/len for a mean).
// Two strategies, picked per dispatch by the COOPERATIVE override:
//  - false: one invocation per output element, a plain loop over len. No barriers, which is
//    what most reductions here need (bias gradients, loss means: many outputs, short len).
//  - true: one workgroup per output element; its invocations stride over len and combine in a
//    tree in workgroup memory. For few outputs over a long axis (a full sum of a big tensor).
#import "lib/workgroup_reduce.wgsl"
override WG: u32 = 256;
override COOPERATIVE: bool = false;

struct Params { outer: u32, len: u32, inner: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let outputs = p.outer * p.inner;
  if (!COOPERATIVE) {
    let o = gid.x + gid.y * groups.x * WG;
    if (o < outputs) {
      let base = (o / p.inner) * p.len * p.inner + o % p.inner;
      var acc = 0.0;
      for (var l = 0u; l < p.len; l++) {
        acc += x[base + l * p.inner];
      }
      out[o] = acc * p.scale;
    }
    return; // uniform: COOPERATIVE is a constant
  }
  let o = wid.x + wid.y * groups.x; // output index, uniform across the workgroup
  let valid = o < outputs;
  var acc = 0.0;
  if (valid) {
    let base = (o / p.inner) * p.len * p.inner + o % p.inner;
    for (var l = lid.x; l < p.len; l += WG) {
      acc += x[base + l * p.inner];
    }
  }
  let total = reduce_sum(acc, lid.x);
  if (valid && lid.x == 0u) {
    out[o] = total * p.scale;
  }
}
