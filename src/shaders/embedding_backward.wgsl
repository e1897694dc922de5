// Embedding gradient for the table, without atomics: one invocation per (v, d) of the table sums
// dy[pos, d] over every position whose index is v. Cost: vocab * dim * positions loads of the
// indices (each invocation scans all of them), which is fine for small vocabularies and batches;
// a large vocabulary would want a sort by index (or atomics on a fixed-point accumulator) instead.
// An index that is not an integer in [0, vocab) matches no row, so its position adds nothing.
#import "lib/float.wgsl"
override WG: u32 = 256;

struct Params { vocab: u32, dim: u32, positions: u32 }

@group(0) @binding(0) var<storage, read> indices: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.vocab * p.dim) { return; }
  let v = f32(i / p.dim);
  let d = i % p.dim;
  var acc = 0.0;
  for (var pos = 0u; pos < p.positions; pos++) {
    let index = indices[pos];
    if (index == v && !is_nan(index)) { acc += dy[pos * p.dim + d]; }
  }
  dtable[i] = acc;
}
