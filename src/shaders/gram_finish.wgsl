// Second pass of the Gram matrix or the squared distances (gram.wgsl): workgroup y sums the
// `count` partials [count, PAIRS] of each pair of tile pair y (lib/gram_tiles.wgsl) and writes
// G[i][j] and G[j][i] of the [T, T] result. An invocation per pair (at most 136), each summing its
// column of partials in order: no barriers, and count is at most 1024.
#import "lib/gram_tiles.wgsl"

override WG: u32 = 64;
override T: u32 = 1;
override TILE: u32 = T;
override PAIRS: u32 = select(TILE * TILE, T * (T + 1u) / 2u, TILE == T);

struct Params { count: u32 }

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> gram: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tiles = tile_pair(wid.x);
  let base = wid.x * p.count * PAIRS;
  var k = 0u;
  for (var i = 0u; i < TILE; i++) {
    for (var l = first_column(tiles, i); l < TILE; l++) {
      let r = tiles.x * TILE + i;
      let c = tiles.y * TILE + l;
      if (k % WG == lid.x && r < T && c < T) {
        var s = 0.0;
        for (var g = 0u; g < p.count; g++) {
          s += partials[base + g * PAIRS + k];
        }
        gram[r * T + c] = s;
        gram[c * T + r] = s;
      }
      k++;
    }
  }
}
