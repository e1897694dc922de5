// Running averages of BatchNorm, updated in place on the GPU (PyTorch semantics):
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * variance * count / (count - 1)
// where variance is the biased batch variance, so running_var tracks the unbiased one.
override WG: u32 = 64;

struct Params { channels: u32, momentum: f32, unbias: f32 }

@group(0) @binding(0) var<storage, read> mean: array<f32>;
@group(0) @binding(1) var<storage, read> variance: array<f32>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let c = gid.x + gid.y * groups.x * WG;
  if (c >= p.channels) { return; }
  let keep = 1.0 - p.momentum;
  running_mean[c] = keep * running_mean[c] + p.momentum * mean[c];
  running_var[c] = keep * running_var[c] + p.momentum * variance[c] * p.unbias;
}
