// out[j] = sum_k w[k] x[k, j] / sum_k w[k] over a stack x [K, P] of K flat vectors (FedAvg of K
// replicas; src/engine/ops/flat.ts), in one pass: an invocation per 4 columns loops over the K
// rows (each weight loaded once for 4 columns) and sums the weights on the way. A zero total
// weight gives 0 (the caller rejects it where the weights are known on the CPU).
// NORMALIZE false: the plain weighted sum sum_k w[k] x[k, j] (weightedSum: combinations of task
// gradients, whose coefficients need not sum to 1).
override WG: u32 = 256;
override NORMALIZE: bool = true;

struct Params { k: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let j = 4u * (gid.x + gid.y * groups.x * WG);
  if (j >= p.cols) { return; }
  let count = min(4u, p.cols - j);
  var acc = vec4<f32>(0.0);
  var total = 0.0;
  for (var k = 0u; k < p.k; k++) {
    let w = weights[k];
    let row = k * p.cols + j;
    if (count == 4u) {
      acc += w * vec4<f32>(x[row], x[row + 1u], x[row + 2u], x[row + 3u]);
    } else {
      for (var c = 0u; c < count; c++) {
        acc[c] += w * x[row + c];
      }
    }
    total += w;
  }
  let some = total != 0.0;
  let mean = select(vec4<f32>(0.0), acc / select(1.0, total, some), some);
  let result = select(acc, mean, NORMALIZE);
  for (var c = 0u; c < count; c++) {
    out[j + c] = result[c];
  }
}
