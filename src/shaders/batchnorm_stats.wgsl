// Batch statistics per channel of x viewed as [N, C, S] (S = H*W after a convolution, 1 after a
// dense layer): mean[c] and the biased variance[c] over the count = N*S values of channel c.
// Two passes over the channel (the mean, then the mean squared deviation, which unlike
// E[x^2] - E[x]^2 cannot cancel to a negative value). One workgroup per channel; its
// invocations stride over the channel's values and combine in a tree.
#import "lib/workgroup_reduce.wgsl"
override WG: u32 = 256;

struct Params { channels: u32, spatial: u32, count: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> variance: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let c = wid.x + wid.y * groups.x; // channel, uniform across the workgroup
  let valid = c < p.channels;
  let inv = 1.0 / f32(p.count);
  var acc = 0.0;
  if (valid) {
    for (var k = lid.x; k < p.count; k += WG) {
      acc += x[((k / p.spatial) * p.channels + c) * p.spatial + k % p.spatial];
    }
  }
  let m = reduce_sum(acc, lid.x) * inv;
  var dev = 0.0;
  if (valid) {
    for (var k = lid.x; k < p.count; k += WG) {
      let d = x[((k / p.spatial) * p.channels + c) * p.spatial + k % p.spatial] - m;
      dev += d * d;
    }
  }
  let v = reduce_sum(dev, lid.x) * inv;
  if (valid && lid.x == 0u) {
    mean[c] = m;
    variance[c] = v;
  }
}
