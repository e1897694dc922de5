// Embedding gradient for the table, without atomics: one invocation per table row v and chunk of
// CHUNK columns sums dy[pos, d] over every position whose index is v, in registers. Each
// invocation scans the indices once for CHUNK columns, so the cost is vocab * ceil(dim / CHUNK) *
// positions index loads (CHUNK times fewer than one invocation per table element) plus the matched
// rows of dy; a very large vocabulary would want a sort by index instead.
// An index that is not an integer in [0, vocab) matches no row, so its position adds nothing.
// Launched with one invocation per table element (the host need not know CHUNK); those past
// vocab * ceil(dim / CHUNK) return at once.
#import "lib/float.wgsl"
override WG: u32 = 256;
const CHUNK: u32 = 16u;

struct Params { vocab: u32, dim: u32, positions: u32 }

@group(0) @binding(0) var<storage, read> indices: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let chunks = (p.dim + CHUNK - 1u) / CHUNK;
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.vocab * chunks) { return; }
  let v = f32(i / chunks);
  let d0 = (i % chunks) * CHUNK;
  let width = min(CHUNK, p.dim - d0);
  var acc: array<f32, CHUNK>;
  for (var pos = 0u; pos < p.positions; pos++) {
    let index = indices[pos];
    if (index == v && !is_nan(index)) {
      let row = pos * p.dim + d0;
      for (var j = 0u; j < width; j++) { acc[j] += dy[row + j]; }
    }
  }
  let out = u32(v) * p.dim + d0;
  for (var j = 0u; j < width; j++) { dtable[out + j] = acc[j]; }
}
