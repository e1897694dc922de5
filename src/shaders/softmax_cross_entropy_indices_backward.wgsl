// d logits[r, j] = dloss[r] * (exp(logits[r, j] - lse[r]) - [j == targets[r]]): the softmax from
// the forward's log-sum-exp, one exp per logit, one invocation per logit. A row whose target is
// not an integer in [0, cols) gets NaN (its loss is NaN too); no memory is addressed by it.
#import "lib/class_index.wgsl"
override WG: u32 = 256;

struct Params { n: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> dloss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let row = i / p.cols;
  let t = class_index(targets[row], p.cols);
  if (t < 0) { dlogits[i] = quiet_nan(); return; }
  let hit = select(0.0, 1.0, u32(t) == i % p.cols);
  dlogits[i] = dloss[row] * (exp_ieee(logits[i] - lse[row]) - hit);
}
