// Test kernel for lib/workgroup_reduce.wgsl: workgroup g reduces x[g * WG .. (g + 1) * WG) and
// writes [reduce_sum, reduce_max] to out[2g], out[2g + 1].
#import "lib/workgroup_reduce.wgsl"
override WG: u32 = 64;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let v = x[wid.x * WG + lid.x];
  let total = reduce_sum(v, lid.x);
  let largest = reduce_max(v, lid.x);
  if (lid.x == 0u) {
    out[2u * wid.x] = total;
    out[2u * wid.x + 1u] = largest;
  }
}
