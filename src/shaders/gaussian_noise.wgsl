// Seeded Gaussian noise from the counter-based generator Philox4x32-10 (Salmon, Moraes, Dror and
// Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011; the generator of Random123, and of
// cuRAND, PyTorch's CUDA generator and JAX's `rbg`). Block q is Philox4x32-10 of the counter
// (q, 0, 0, 0) under the key (key0, key1) = the seed's low and high 32 bits: four 32-bit words.
// Elements 4q .. 4q+3 come from block q by the Box-Muller transform of its words (w0, w1) and
// (w2, w3):
//   u1 = ((w >> 8) + 1) / 2^24 in (0, 1],  u2 = (w' >> 8) / 2^24 in [0, 1)  (exact in f32)
//   r = sqrt(-2 ln u1),  theta = 2 pi u2,  z = (r cos theta, r sin theta)
// with ln, cos and sin of our own, accurate on any adapter (the builtins need not be).
// so element i depends only on (seed, i): the same for any dispatch shape or workgroup size, and a
// longer vector starts with the shorter one. Invocations stride over the blocks.
// RAW (for tests): out[2i], out[2i + 1] = low and high 16 bits of word i of the stream, exact in f32.
#import "lib/philox.wgsl"

override WG: u32 = 256;
override RAW: bool = false;

struct Params { n: u32, key0: u32, key1: u32, mean: f32, stddev: f32 }

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

const PI: f32 = 3.14159265358979;
const LN2: f32 = 0.693147180559945;
const SQRT_HALF: f32 = 0.707106781186548;

// -ln(u) for u in (0, 1], accurate to a few ulp: u = 2^e m with m in [sqrt(1/2), sqrt(2)), and
// ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its series to s^9 (error < 4e-10).
// The builtin log may be off by 2^-21 absolutely near 1 (WGSL's bound), which would swamp the small
// radii and can even turn -ln(u) negative.
fn neg_log(u: f32) -> f32 {
  let bits = bitcast<u32>(u);
  var e = i32(bits >> 23u) - 127;
  var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u); // [1, 2)
  if (m > 1.41421356) {
    m *= 0.5;
    e += 1;
  }
  let s = (m - 1.0) / (m + 1.0);
  let s2 = s * s;
  let ln_m = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0)))));
  return max(0.0, -(f32(e) * LN2 + ln_m));
}

// (cos, sin) of 2 pi t for t = k / 2^24 given as the 24-bit integer k, accurate to a few ulp
// absolutely (the builtins may be off by 2^-11, WGSL's bound for sin and cos). The angle is
// q pi/2 + pi/4 + x with the quadrant q the top two bits of k and x in [-pi/4, pi/4) (exact
// integer steps), where Taylor series to x^9 and x^10 are accurate to 2e-9.
fn cos_sin_turns(k: u32) -> vec2<f32> {
  let q = k >> 22u;
  let x = (f32(k & 0x3fffffu) * (1.0 / 4194304.0) - 0.5) * (PI / 2.0);
  let x2 = x * x;
  let sx = x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0)))));
  let cx = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0)))));
  let c = (cx - sx) * SQRT_HALF; // rotated by pi/4
  let s = (cx + sx) * SQRT_HALF;
  switch q {
    case 0u: { return vec2<f32>(c, s); }
    case 1u: { return vec2<f32>(-s, c); }
    case 2u: { return vec2<f32>(-c, -s); }
    default: { return vec2<f32>(s, -c); }
  }
}

fn box_muller(w1: u32, w2: u32) -> vec2<f32> {
  let u1 = f32((w1 >> 8u) + 1u) * (1.0 / 16777216.0);
  let r = sqrt(2.0 * neg_log(u1));
  return r * cos_sin_turns(w2 >> 8u);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let blocks = (p.n + 3u) / 4u;
  for (var q = gid.x; q < blocks; q += groups.x * WG) {
    let w = philox4x32_10(vec4<u32>(q, 0u, 0u, 0u), p.key0, p.key1);
    let first = 4u * q;
    let count = min(4u, p.n - first);
    if (RAW) {
      for (var j = 0u; j < count; j++) {
        out[2u * (first + j)] = f32(w[j] & 0xffffu);
        out[2u * (first + j) + 1u] = f32(w[j] >> 16u);
      }
    } else {
      let z = vec4<f32>(box_muller(w.x, w.y), box_muller(w.z, w.w)) * p.stddev + p.mean;
      for (var j = 0u; j < count; j++) {
        out[first + j] = z[j];
      }
    }
  }
}
