// BatchNorm input gradient for x, dy viewed as [N, C, S], with r = 1 / sqrt(variance[c] + eps):
//   training (batch statistics):  dx = gamma[c] * r * (dy - mean(dy) - xhat * mean(dy * xhat))
//     with the channel means from sums = [sum(dy) per channel, sum(dy * xhat) per channel]
//     (batchnorm_backward_stats) times inv_count = 1 / (N * S);
//   inference (running averages, constants): dx = gamma[c] * r * dy (sums is not read).
override WG: u32 = 256;
override TRAINING: bool = true;

struct Params { n: u32, channels: u32, spatial: u32, eps: f32, inv_count: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> variance: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let c = (i / p.spatial) % p.channels;
  let r = inverseSqrt(variance[c] + p.eps);
  var g = dy[i];
  if (TRAINING) {
    let xhat = (x[i] - mean[c]) * r;
    g = g - sums[c] * p.inv_count - xhat * (sums[p.channels + c] * p.inv_count);
  }
  dx[i] = gamma[c] * r * g;
}
