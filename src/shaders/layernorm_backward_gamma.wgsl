// LayerNorm d gamma: dgamma[j] = sum over rows of dy[row, j] * (x[row, j] - mean[row]) * rstd[row].
// One invocation per column, looping over the rows (neighbouring invocations read neighbouring
// columns, so the loads coalesce). d beta is a plain column sum (the reduce kernel).
override WG: u32 = 64;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let j = gid.x + gid.y * groups.x * WG;
  if (j >= p.cols) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let i = r * p.cols + j;
    acc += dy[i] * (x[i] - mean[r]) * rstd[r];
  }
  dgamma[j] = acc;
}
