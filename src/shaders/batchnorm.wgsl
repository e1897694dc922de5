// BatchNorm forward for x viewed as [N, C, S]: out = (x - mean[c]) / sqrt(variance[c] + eps) *
// gamma[c] + beta[c], with the batch statistics (training) or the running averages (inference).
override WG: u32 = 256;

struct Params { n: u32, channels: u32, spatial: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> mean: array<f32>;
@group(0) @binding(2) var<storage, read> variance: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let c = (i / p.spatial) % p.channels;
  out[i] = (x[i] - mean[c]) * inverseSqrt(variance[c] + p.eps) * gamma[c] + beta[c];
}
