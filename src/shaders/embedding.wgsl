// Embedding lookup: out[pos, d] = table[indices[pos], d]. Indices are f32 tensors holding
// integers in [0, vocab) (validated on the CPU by the layer API); a position whose index is not
// such an integer gets a row of zeros rather than another row's values.
override WG: u32 = 256;

struct Params { n: u32, dim: u32, vocab: u32 }

@group(0) @binding(0) var<storage, read> indices: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let v = indices[i / p.dim];
  var value = 0.0;
  if (v >= 0.0 && v < f32(p.vocab) && floor(v) == v) {
    value = table[u32(v) * p.dim + i % p.dim];
  }
  out[i] = value;
}
