// loss[r] = -sum_j targets[r, j] * log_softmax(logits[r])_j, computed as
// sum_j t_j * (lse - x_j) with lse = m + log(sum_j exp(x_j - m)), m = max_j x_j, so no exp overflows.
// Targets are probabilities per row (one-hot for hard labels, softened for distillation). A zero
// target adds nothing, even against a logit of -inf (0 log 0 = 0); NaN propagates otherwise.
// COOPERATIVE: one workgroup per row, its invocations striding over the columns (many classes);
// otherwise one invocation per row and no barriers (few classes).
#import "lib/row_logsumexp.wgsl"
override WG: u32 = 64;
override COOPERATIVE: bool = false;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn row_loss(row: u32) -> f32 {
  let base = row * p.cols;
  let lse = row_lse(base, p.cols);
  var l = 0.0;
  for (var j = 0u; j < p.cols; j++) { l += term(targets[base + j], lse, logits[base + j]); }
  return l;
}

// One target's term, t * (lse - x); none for t = 0, even where x is -inf (0 log 0 = 0).
fn term(t: f32, lse: f32, x: f32) -> f32 {
  if (t == 0.0 && !is_nan(t)) { return 0.0; }
  return t * (lse - x);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  if (!COOPERATIVE) {
    let r = gid.x + gid.y * groups.x * WG;
    if (r < p.rows) { loss[r] = row_loss(r); }
    return;
  }
  let row = wid.x + wid.y * groups.x; // uniform across the workgroup
  let valid = row < p.rows;
  let base = row * p.cols;
  let lse = row_lse_cooperative(base, p.cols, valid, lid.x);
  var l = 0.0;
  if (valid) {
    for (var j = lid.x; j < p.cols; j += WG) { l += term(targets[base + j], lse, logits[base + j]); }
  }
  l = reduce_sum(l, lid.x);
  if (valid && lid.x == 0u) { loss[row] = l; }
}
