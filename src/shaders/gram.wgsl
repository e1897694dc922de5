// First pass of the Gram matrix G[i][j] = sum_n x[i, n] x[j, n] of a stack x [T, n] of T flat
// vectors (per-task gradients; src/engine/ops/flat.ts): each workgroup reduces its columns for
// all T(T+1)/2 pairs i <= j at once, reading each element once, and writes one partial per pair;
// gram_finish.wgsl sums them. An invocation takes 4 columns at a time (rows start at i * n, not
// aligned to 4 when n is not a multiple of 4, so the 4 are loaded as scalars) and strides over
// the grid; the last, partial block is masked. The workgroup then sums its invocations' pair
// sums through workgroup memory laid out by pair, with one barrier (a tree per pair would need
// many: slow on CPU-emulated adapters).
override WG: u32 = 64;
override T: u32 = 1;
const MAX_T = 16u;
const MAX_PAIRS = 136u; // MAX_T (MAX_T + 1) / 2
override PAIRS: u32 = T * (T + 1u) / 2u;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> pair_sums: array<f32, PAIRS * WG>;

// Adds the products of the 4 columns from j (count of them valid) for every pair to acc.
fn accumulate(acc: ptr<function, array<f32, MAX_PAIRS>>, v: ptr<function, array<vec4<f32>, MAX_T>>, j: u32, count: u32) {
  for (var i = 0u; i < T; i++) {
    let r = i * p.n + j;
    if (count == 4u) {
      (*v)[i] = vec4<f32>(x[r], x[r + 1u], x[r + 2u], x[r + 3u]);
    } else {
      (*v)[i] = vec4<f32>(0.0);
      for (var c = 0u; c < count; c++) {
        (*v)[i][c] = x[r + c];
      }
    }
  }
  var k = 0u;
  for (var i = 0u; i < T; i++) {
    for (var l = i; l < T; l++) {
      (*acc)[k] += dot((*v)[i], (*v)[l]);
      k++;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  var acc: array<f32, MAX_PAIRS>; // zeroed
  var v: array<vec4<f32>, MAX_T>; // the block's values of each row, reused (zeroing it per block is slow)
  let full = p.n / 4u;
  let stride = groups.x * WG;
  for (var b = gid.x; b < full; b += stride) {
    accumulate(&acc, &v, 4u * b, 4u);
  }
  let rest = p.n % 4u;
  if (gid.x == 0u && rest != 0u) {
    accumulate(&acc, &v, 4u * full, rest);
  }
  for (var k = 0u; k < PAIRS; k++) {
    pair_sums[k * WG + lid.x] = acc[k];
  }
  workgroupBarrier();
  for (var k = lid.x; k < PAIRS; k += WG) {
    var s = 0.0;
    for (var l = 0u; l < WG; l++) {
      s += pair_sums[k * WG + l];
    }
    partials[wid.x * PAIRS + k] = s;
  }
}
