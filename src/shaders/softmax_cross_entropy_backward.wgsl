// d logits[r, j] = dloss[r] * (softmax(logits[r])_j * sum_k targets[r, k] - targets[r, j]).
// Recomputes the row's max and normaliser instead of storing the softmax. COOPERATIVE: one
// workgroup per row (many classes); otherwise one invocation per row and no barriers.
#import "lib/workgroup_reduce.wgsl"
override WG: u32 = 64;
override COOPERATIVE: bool = false;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read> dloss: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn row_gradient(row: u32) {
  let base = row * p.cols;
  var m = -3.402823e38;
  var tsum = 0.0;
  for (var j = 0u; j < p.cols; j++) {
    m = max_nan(m, logits[base + j]);
    tsum += targets[base + j];
  }
  var s = 0.0;
  for (var j = 0u; j < p.cols; j++) { s += exp_ieee(logits[base + j] - m); }
  let g = dloss[row];
  for (var j = 0u; j < p.cols; j++) {
    dlogits[base + j] = g * (exp_ieee(logits[base + j] - m) / s * tsum - targets[base + j]);
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  if (!COOPERATIVE) {
    let r = gid.x + gid.y * groups.x * WG;
    if (r < p.rows) { row_gradient(r); }
    return;
  }
  let row = wid.x + wid.y * groups.x;
  let valid = row < p.rows;
  let base = row * p.cols;
  var m = -3.402823e38;
  var tsum = 0.0;
  if (valid) {
    for (var j = lid.x; j < p.cols; j += WG) {
      m = max_nan(m, logits[base + j]);
      tsum += targets[base + j];
    }
  }
  m = reduce_max(m, lid.x);
  tsum = reduce_sum(tsum, lid.x);
  var s = 0.0;
  if (valid) {
    for (var j = lid.x; j < p.cols; j += WG) { s += exp_ieee(logits[base + j] - m); }
  }
  s = reduce_sum(s, lid.x);
  if (!valid) { return; }
  let g = dloss[row];
  for (var j = lid.x; j < p.cols; j += WG) {
    let prob = exp_ieee(logits[base + j] - m) / s;
    dlogits[base + j] = g * (prob * tsum - targets[base + j]);
  }
}
