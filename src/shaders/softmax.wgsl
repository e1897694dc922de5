// y[r, j] = exp(x[r, j] - m) / sum_k exp(x[r, k] - m), m = max_k x[r, k]: subtracting the row max
// keeps every exp in (0, 1], so large logits do not overflow. A row holding a NaN or +inf is NaN.
// One invocation per row and no barriers (workgroup barriers are slow on software adapters).
#import "lib/float.wgsl"
override WG: u32 = 64;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let row = gid.x + gid.y * groups.x * WG;
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var m = -3.402823e38; // -3.4028235e38 (f32 max) is rejected as out of range by some compilers
  for (var j = 0u; j < p.cols; j++) { m = max_nan(m, x[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.cols; j++) {
    let e = exp_ieee(x[base + j] - m);
    y[base + j] = e;
    s += e;
  }
  for (var j = 0u; j < p.cols; j++) { y[base + j] /= s; }
}
