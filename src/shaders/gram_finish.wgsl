// Second pass of the Gram matrix (gram.wgsl): sums the `count` partials [count, T(T+1)/2] of each
// pair i <= j and writes G[i][j] and G[j][i] of the [T, T] result. An invocation per pair (at most
// 136), each summing its column of partials in order: no barriers, and count is at most 1024.
override WG: u32 = 64;
override T: u32 = 1;
override PAIRS: u32 = T * (T + 1u) / 2u;

struct Params { count: u32 }

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> gram: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var k = 0u;
  for (var i = 0u; i < T; i++) {
    for (var j = i; j < T; j++) {
      if (k % WG == lid.x) {
        var s = 0.0;
        for (var g = 0u; g < p.count; g++) {
          s += partials[g * PAIRS + k];
        }
        gram[i * T + j] = s;
        gram[j * T + i] = s;
      }
      k++;
    }
  }
}
