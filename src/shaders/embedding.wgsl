// Embedding lookup: out[pos, d] = table[indices[pos], d]. Indices are f32 tensors that should hold
// integers in [0, vocab) (the layer API checks them on the CPU); a position whose index is not
// such an integer (out of range, fractional, NaN or infinite) gets a row of NaN, so that the loss
// becomes NaN where a row of zeros or another row's values would train on silently.
#import "lib/float.wgsl"
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
  var value = quiet_nan();
  if (is_finite(v) && v >= 0.0 && v < f32(p.vocab) && floor(v) == v) {
    value = table[u32(v) * p.dim + i % p.dim];
  }
  out[i] = value;
}
