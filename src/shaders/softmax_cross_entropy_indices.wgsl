// loss[r] = lse[r] - logits[r, targets[r]], with lse[r] the row's log-sum-exp (max-shifted, so no
// exp overflows): one exp per logit. Also writes lse, from which the backward forms the softmax
// with one more exp per logit. Targets are class ids held in f32; an id that is not an integer
// in [0, cols) is read nowhere and gives a NaN loss (the row's gradient is NaN too), so that a
// finite check stops the training rather than it training on a wrong row.
// COOPERATIVE: one workgroup per row, its invocations striding over the columns (many classes);
// otherwise one invocation per row and no barriers (few classes).
#import "lib/row_logsumexp.wgsl"
#import "lib/class_index.wgsl"
override WG: u32 = 64;
override COOPERATIVE: bool = false;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn finish(row: u32, l: f32) {
  lse[row] = l;
  let t = class_index(targets[row], p.cols);
  loss[row] = select(quiet_nan(), l - logits[row * p.cols + u32(max(t, 0))], t >= 0);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  if (!COOPERATIVE) {
    let r = gid.x + gid.y * groups.x * WG;
    if (r < p.rows) { finish(r, row_lse(r * p.cols, p.cols)); }
    return;
  }
  let row = wid.x + wid.y * groups.x; // uniform across the workgroup
  let valid = row < p.rows;
  let l = row_lse_cooperative(row * p.cols, p.cols, valid, lid.x);
  if (valid && lid.x == 0u) { finish(row, l); }
}
