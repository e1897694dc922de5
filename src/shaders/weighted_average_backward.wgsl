// Gradient of weighted_average.wgsl with respect to the stack: dx[k, j] = w[k] / sum(w) * dy[j]
// (0 when the weights sum to 0), or w[k] * dy[j] when NORMALIZE is false (weightedSum). An
// invocation per 4 columns sums the K weights once and writes the K gradients of its columns.
override WG: u32 = 256;
override NORMALIZE: bool = true;

struct Params { k: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let j = 4u * (gid.x + gid.y * groups.x * WG);
  if (j >= p.cols) { return; }
  let count = min(4u, p.cols - j);
  var total = 0.0;
  for (var k = 0u; k < p.k; k++) {
    total += weights[k];
  }
  let some = total != 0.0;
  var g = vec4<f32>(0.0);
  for (var c = 0u; c < count; c++) {
    g[c] = select(select(0.0, dy[j + c] / select(1.0, total, some), some), dy[j + c], !NORMALIZE);
  }
  for (var k = 0u; k < p.k; k++) {
    let w = weights[k];
    let row = k * p.cols + j;
    if (count == 4u) {
      dx[row] = w * g.x;
      dx[row + 1u] = w * g.y;
      dx[row + 2u] = w * g.z;
      dx[row + 3u] = w * g.w;
    } else {
      for (var c = 0u; c < count; c++) {
        dx[row + c] = w * g[c];
      }
    }
  }
}
