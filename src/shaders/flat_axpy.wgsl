// out = base + c * b over n elements of flat vectors (src/engine/ops/flat.ts), by vec4, with
//   c = alpha * (SCALE_BY ? s[0] : 1) * (DIVIDE ? 1 / d[d_index], 0 where that is 0 : 1)
//   base: BASE 0 nothing, 1 a, 2 out itself (in place: out += c * b).
// The scalars s and d are one-element GPU tensors, so a factor computed by an earlier kernel
// (a norm, a clipping factor, an upstream gradient) is applied without a readback. The forward of
// scaleBy, axpy, addScaledInPlace and clipToNorm, and the backward of the flat reductions.
override WG: u32 = 256;
override BASE: u32 = 0;
override SCALE_BY: bool = false;
override DIVIDE: bool = false;

struct Params { n: u32, alpha: f32, d_index: u32 }

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read> d: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i * 4u >= p.n) { return; }
  var c = p.alpha;
  if (SCALE_BY) {
    c *= s[0];
  }
  if (DIVIDE) {
    let v = d[p.d_index];
    c = select(0.0, c / select(1.0, v, v != 0.0), v != 0.0);
  }
  var y = c * b[i];
  switch BASE {
    case 1u: { y += a[i]; }
    case 2u: { y += out[i]; }
    default: {}
  }
  // The last vec4 may run past n: leave the elements there as they are.
  if (i * 4u + 4u > p.n) {
    y = select(out[i], y, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n - i * 4u));
  }
  out[i] = y;
}
