// dx[r, j] = y[r, j] * (dy[r, j] - sum_k dy[r, k] * y[r, k]), from the forward output y alone
// (the Jacobian of softmax is diag(y) - y y^T). One invocation per row, no barriers.
override WG: u32 = 64;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let row = gid.x + gid.y * groups.x * WG;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var d = 0.0;
  for (var j = 0u; j < p.cols; j++) { d += dy[base + j] * y[base + j]; }
  for (var j = 0u; j < p.cols; j++) { dx[base + j] = y[base + j] * (dy[base + j] - d); }
}
