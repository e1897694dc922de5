// First pass of the Gram matrix G[i][j] = sum_n x[i, n] x[j, n] of a stack x [T, n] of T flat
// vectors (per-task gradients), or with DISTANCE of the squared distances sum_n (x[i, n] -
// x[j, n])^2 (Krum's scores over client updates; src/engine/ops/flat.ts). Workgroup (x, y)
// reduces its columns for every pair of tile pair y (lib/gram_tiles.wgsl; a single tile of all T
// rows up to 16 vectors, so each element is read once) and writes one partial per pair;
// gram_finish.wgsl sums them. An invocation takes 4 columns at a time (rows start at i * n, not
// aligned to 4 when n is not a multiple of 4, so the 4 are loaded as scalars) and strides over
// the grid; the last, partial block is masked (zeros on both sides of a pair). The workgroup then
// sums its invocations' pair sums through workgroup memory laid out by pair, with one barrier (a
// tree per pair would need many: slow on CPU-emulated adapters).
#import "lib/gram_tiles.wgsl"

override WG: u32 = 64;
override T: u32 = 1;
override TILE: u32 = T;
override DISTANCE: bool = false;
const MAX_TILE = 16u;
const MAX_PAIRS = 136u; // MAX_TILE (MAX_TILE + 1) / 2, at least 8 * 8
// Pair slots per tile pair: the pairs i <= l of the one tile, or all TILE * TILE of two tiles.
override PAIRS: u32 = select(TILE * TILE, T * (T + 1u) / 2u, TILE == T);

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> pair_sums: array<f32, PAIRS * WG>;

// The 4 columns from j (count of them valid, zeros after) of a row; zeros for the rows past T of a last tile.
fn load(row: u32, j: u32, count: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (row >= T) { return v; }
  let r = row * p.n + j;
  if (count == 4u) { return vec4<f32>(x[r], x[r + 1u], x[r + 2u], x[r + 3u]); }
  for (var c = 0u; c < count; c++) {
    v[c] = x[r + c];
  }
  return v;
}

// Adds the products (or squared differences) of the 4 columns from j for every pair of the tile pair to acc.
fn accumulate(acc: ptr<function, array<f32, MAX_PAIRS>>, va: ptr<function, array<vec4<f32>, MAX_TILE>>,
              vb: ptr<function, array<vec4<f32>, MAX_TILE>>, tiles: vec2<u32>, j: u32, count: u32) {
  let same = tiles.x == tiles.y;
  for (var i = 0u; i < TILE; i++) {
    (*va)[i] = load(tiles.x * TILE + i, j, count);
    if (!same) { (*vb)[i] = load(tiles.y * TILE + i, j, count); }
  }
  var k = 0u;
  for (var i = 0u; i < TILE; i++) {
    let a = (*va)[i];
    for (var l = first_column(tiles, i); l < TILE; l++) {
      let b = select((*vb)[l], (*va)[l], same);
      if (DISTANCE) {
        let e = a - b;
        (*acc)[k] += dot(e, e);
      } else {
        (*acc)[k] += dot(a, b);
      }
      k++;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let tiles = tile_pair(wid.y);
  var acc: array<f32, MAX_PAIRS>; // zeroed
  var va: array<vec4<f32>, MAX_TILE>; // the block's values of each row of the tiles, reused
  var vb: array<vec4<f32>, MAX_TILE>;
  let full = p.n / 4u;
  let stride = groups.x * WG;
  for (var b = gid.x; b < full; b += stride) {
    accumulate(&acc, &va, &vb, tiles, 4u * b, 4u);
  }
  let rest = p.n % 4u;
  if (gid.x == 0u && rest != 0u) {
    accumulate(&acc, &va, &vb, tiles, 4u * full, rest);
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
    partials[(wid.y * groups.x + wid.x) * PAIRS + k] = s;
  }
}
