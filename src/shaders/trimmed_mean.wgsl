// Coordinate-wise order statistics of a stack x [K, cols] of K flat vectors (robust federated
// aggregation; src/engine/ops/flat.ts): out[j] = the mean of the sorted values x[., j] at ranks
// low .. high - 1. The median is the case low = (K - 1) / 2, high = K / 2 + 1 (the middle value,
// or the mean of the two middle values for even K, as numpy.median); the trimmed mean drops
// `low` values at each end (high = K - low, as scipy.stats.trim_mean). An invocation per
// coordinate (neighbours read neighbouring addresses of each row) loads its K values into a
// private array and insertion-sorts them: K is at most MAX_K. NaN sorts after +inf (as numpy's
// sort), so a NaN reaches the result only when it lands in the kept ranks.
#import "lib/float.wgsl"

override WG: u32 = 256;
const MAX_K = 128u; // MAX_TRIMMED_MEAN_VECTORS in flat.ts

struct Params { k: u32, cols: u32, low: u32, high: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// a < b with NaN after everything.
fn before(a: f32, b: f32) -> bool {
  return !is_nan(a) && (is_nan(b) || a < b);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let j = gid.x + gid.y * groups.x * WG;
  if (j >= p.cols) { return; }
  var v: array<f32, MAX_K>;
  for (var k = 0u; k < p.k; k++) {
    let value = x[k * p.cols + j];
    var i = k;
    while (i > 0u && before(value, v[i - 1u])) {
      v[i] = v[i - 1u];
      i--;
    }
    v[i] = value;
  }
  var s = 0.0;
  for (var k = p.low; k < p.high; k++) {
    s += v[k];
  }
  out[j] = s / f32(p.high - p.low);
}
