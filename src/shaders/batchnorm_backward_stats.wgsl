// BatchNorm backward statistics per channel of x, dy viewed as [N, C, S]:
//   sum(dy) over the channel (= d beta) and sum(dy * xhat) (= d gamma),
// xhat = (x - mean[c]) / sqrt(variance[c] + eps). WHAT picks the outputs: 0 both, as
// out = [sum(dy) per channel, then sum(dy * xhat) per channel] (the input gradient needs both);
// 1 only sum(dy) (d beta); 2 only sum(dy * xhat) (d gamma). One workgroup per channel.
#import "lib/workgroup_reduce.wgsl"
override WG: u32 = 256;
override WHAT: u32 = 0;

struct Params { channels: u32, spatial: u32, count: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> variance: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let c = wid.x + wid.y * groups.x; // channel, uniform across the workgroup
  let valid = c < p.channels;
  var s_dy = 0.0;
  var s_dyx = 0.0;
  if (valid) {
    let m = mean[c];
    let r = inverseSqrt(variance[c] + p.eps);
    for (var k = lid.x; k < p.count; k += WG) {
      let i = ((k / p.spatial) * p.channels + c) * p.spatial + k % p.spatial;
      let g = dy[i];
      s_dy += g;
      s_dyx += g * (x[i] - m) * r;
    }
  }
  s_dy = reduce_sum(s_dy, lid.x);
  s_dyx = reduce_sum(s_dyx, lid.x);
  if (valid && lid.x == 0u) {
    switch WHAT {
      case 0u: {
        out[c] = s_dy;
        out[p.channels + c] = s_dyx;
      }
      case 1u: { out[c] = s_dy; }
      default: { out[c] = s_dyx; }
    }
  }
}
