// 8-bit stochastic quantisation of a flat f32 vector (src/engine/ops/quantize.ts), one workgroup per
// block of BLOCK elements (a multiple of 4; the last block may be shorter):
//   1. the block's minimum lo and maximum hi (NaN if any element is NaN) by one workgroup tree;
//      step = hi / 255 - lo / 255 (no overflow), the 256 levels lo + c step, c = 0 .. 255;
//   2. element i: t = (x_i - lo) / step in [0, 255], c = floor(t) + (u_i < t - floor(t)), so
//      E[c] = t (stochastic rounding: unbiased up to the 2^-24 grain of u_i), clamped to [0, 255];
//      u_i = (w >> 8) / 2^24 with w word i % 4 of Philox4x32-10 of the counter (i / 4, 1, 0, 0)
//      under the key (key0, key1): the codes depend only on (seed, x), not on the launch. (Counter
//      word 1 is 1: a stream apart from gaussian_noise.wgsl's (q, 0, 0, 0) under the same seed.)
//   3. code word q = elements 4q .. 4q+3, element 4q + j in bits 8j .. 8j+7 (little-endian bytes:
//      the bytes of the codes buffer are the codes in element order); zero past n.
// scales[2b], scales[2b + 1] = (lo, step) of block b. A block with a NaN or infinite element, or
// whose range hi - lo overflows f32, is poisoned: (NaN, NaN) and codes 0, so all of it decodes to
// NaN (dequantize8.wgsl); step 0 (a constant block) gives codes 0, decoding to lo exactly.
// FEEDBACK: x is delta + residual, read from the two inputs, and residual is overwritten with
// x - decoded (the decoded value computed as dequantize8.wgsl does: lo + f32(c) * step).
#import "lib/float.wgsl"
#import "lib/philox.wgsl"
#import "lib/workgroup_reduce.wgsl"

override WG: u32 = 64;
override BLOCK: u32 = 1024;
override FEEDBACK: bool = false;

struct Params { n: u32, key0: u32, key1: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> residual: array<f32>;
@group(0) @binding(2) var<storage, read_write> codes: array<u32>;
@group(0) @binding(3) var<storage, read_write> scales: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn value(i: u32) -> f32 {
  if (FEEDBACK) {
    return x[i] + residual[i];
  }
  return x[i];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let lid = lid3.x;
  let b = wid.x + wid.y * groups.x;
  let first = b * BLOCK;
  if (first >= p.n) { return; } // a whole workgroup past the end (the grid's last row)
  let end = min(first + BLOCK, p.n);

  // 1. -lo and hi of the block.
  var m = vec2<f32>(-infinity(), -infinity());
  for (var i = first + lid; i < end; i += WG) {
    let v = value(i);
    m = vec2<f32>(max_nan(m.x, -v), max_nan(m.y, v));
  }
  m = reduce_max2(m, lid);
  let lo = -m.x;
  let hi = m.y;
  let step = hi / 255.0 - lo / 255.0;
  let ok = is_finite(lo) && is_finite(hi) && is_finite(hi - lo);
  if (lid == 0u) {
    scales[2u * b] = select(quiet_nan(), lo, ok);
    scales[2u * b + 1u] = select(quiet_nan(), step, ok);
  }

  // 2, 3. Codes, four per word; the residual with FEEDBACK.
  let words_end = (end + 3u) / 4u;
  for (var q = first / 4u + lid; q < words_end; q += WG) {
    let r = philox4x32_10(vec4<u32>(q, 1u, 0u, 0u), p.key0, p.key1);
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
      let i = 4u * q + j;
      if (i >= end) { break; }
      let v = value(i);
      var c = 0u;
      if (ok && step > 0.0) {
        let t = (v - lo) / step;
        let k = floor(t);
        let u = f32(r[j] >> 8u) * (1.0 / 16777216.0);
        c = u32(clamp(k + select(0.0, 1.0, u < t - k), 0.0, 255.0));
      }
      word |= c << (8u * j);
      if (FEEDBACK) {
        residual[i] = v - select(quiet_nan(), lo + f32(c) * step, ok);
      }
    }
    codes[q] = word;
  }
}
