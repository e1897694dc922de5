// LayerNorm input gradient, one workgroup per row: with g = dy * gamma and
// xhat = (x - mean[row]) * rstd[row] (saved by the forward),
//   dx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat)).
#import "lib/workgroup_reduce.wgsl"
override WG: u32 = 64;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let row = wid.x + wid.y * groups.x; // uniform across the workgroup
  let valid = row < p.rows;
  let base = row * p.cols;
  var m = 0.0;
  var r = 0.0;
  var s_g = 0.0;
  var s_gx = 0.0;
  if (valid) {
    m = mean[row];
    r = rstd[row];
    for (var j = lid.x; j < p.cols; j += WG) {
      let g = dy[base + j] * gamma[j];
      s_g += g;
      s_gx += g * (x[base + j] - m) * r;
    }
  }
  let inv = 1.0 / f32(p.cols);
  let mean_g = reduce_sum(s_g, lid.x) * inv;
  let mean_gx = reduce_sum(s_gx, lid.x) * inv;
  if (valid) {
    for (var j = lid.x; j < p.cols; j += WG) {
      let xhat = (x[base + j] - m) * r;
      dx[base + j] = r * (dy[base + j] * gamma[j] - mean_g - xhat * mean_gx);
    }
  }
}
