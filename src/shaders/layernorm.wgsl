// LayerNorm forward over rows of length cols: out = (x - mean) * rstd * gamma + beta with the
// row's mean and rstd = 1 / sqrt(biased variance + eps), both also written per row for the
// backward. One workgroup per row (two passes over it: the mean, then the squared deviations).
#import "lib/workgroup_reduce.wgsl"
override WG: u32 = 64;

struct Params { rows: u32, cols: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let row = wid.x + wid.y * groups.x; // uniform across the workgroup
  let valid = row < p.rows;
  let base = row * p.cols;
  let inv = 1.0 / f32(p.cols);
  var acc = 0.0;
  if (valid) {
    for (var j = lid.x; j < p.cols; j += WG) { acc += x[base + j]; }
  }
  let m = reduce_sum(acc, lid.x) * inv;
  var dev = 0.0;
  if (valid) {
    for (var j = lid.x; j < p.cols; j += WG) {
      let d = x[base + j] - m;
      dev += d * d;
    }
  }
  let r = inverseSqrt(reduce_sum(dev, lid.x) * inv + p.eps);
  if (valid) {
    for (var j = lid.x; j < p.cols; j += WG) {
      out[base + j] = (x[base + j] - m) * r * gamma[j] + beta[j];
    }
    if (lid.x == 0u) {
      mean[row] = m;
      rstd[row] = r;
    }
  }
}
