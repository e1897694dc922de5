// Conv2d backward with respect to the weight, a GEMM-like reduction over output positions:
//   dW[oc, k] = sum over p = (n, oh, ow) of dy[n, oc, oh, ow] * x[n, ic, oh*SH - PH + kh, ow*SW - PW + kw]
// with k = (ic, kh, kw). Each invocation computes a 4x4 register block (4 output channels x 4 k):
// per position it loads 4 dy values and gathers 4 inputs (vectorised bounds checks) for 16
// multiply-adds. The (n, oh, ow) of p advance as counters. The reduction over P positions is
// split into chunks (workgroup y = chunk index) so that small weights still spread over many
// invocations; chunk s writes its partial sums to dw[s, OC, K] and the op sums over s.
override WG: u32 = 64;

struct Dims { N: u32, C: u32, H: u32, W: u32, OC: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, PH: u32, PW: u32, K: u32, P: u32, chunk: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;

// For k: (offset of channel ic in an image, kh, kw).
fn tap(k: u32) -> vec3<i32> {
  let khw = d.KH * d.KW;
  let r = k % khw;
  return vec3<i32>(i32((k / khw) * d.H * d.W), i32(r / d.KW), i32(r % d.KW));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let K = d.K;
  let kb = (K + 3u) / 4u;
  let ocb = gid.x / kb;
  if (ocb * 4u >= d.OC) { return; }
  let k0 = (gid.x % kb) * 4u;
  let oc0 = ocb * 4u;
  let s = wid.y;
  let t0 = tap(k0);
  let t1 = tap(min(k0 + 1u, K - 1u));
  let t2 = tap(min(k0 + 2u, K - 1u));
  let t3 = tap(min(k0 + 3u, K - 1u));
  let coff = vec4<i32>(t0.x, t1.x, t2.x, t3.x);
  let kh = vec4<i32>(t0.y, t1.y, t2.y, t3.y);
  let kw = vec4<i32>(t0.z, t1.z, t2.z, t3.z);
  let ohw = d.OH * d.OW;
  let dyo = vec4<u32>(oc0, min(oc0 + 1u, d.OC - 1u), min(oc0 + 2u, d.OC - 1u), min(oc0 + 3u, d.OC - 1u)) * ohw;
  let H = vec4<i32>(i32(d.H));
  let W = vec4<i32>(i32(d.W));
  let zero = vec4<i32>(0);
  let chw = d.C * d.H * d.W;

  let start = s * d.chunk;
  let end = min(d.P, start + d.chunk);
  var n = start / ohw;
  let pix = start % ohw;
  var oh = pix / d.OW;
  var ow = pix % d.OW;
  // acc[i] = dW[oc0 + i, k0 .. k0 + 3]
  var acc = mat4x4<f32>();
  for (var p = start; p < end; p++) {
    let ih = vec4<i32>(i32(oh * d.SH) - i32(d.PH)) + kh;
    let iw = vec4<i32>(i32(ow * d.SW) - i32(d.PW)) + kw;
    let inside = (ih >= zero) & (ih < H) & (iw >= zero) & (iw < W);
    let idx = select(zero, vec4<i32>(i32(n * chw)) + coff + ih * W + iw, inside);
    let xv = select(vec4<f32>(0.0), vec4<f32>(x[idx.x], x[idx.y], x[idx.z], x[idx.w]), inside);
    let g = vec4<u32>(n * d.OC * ohw + oh * d.OW + ow) + dyo;
    let gv = vec4<f32>(dy[g.x], dy[g.y], dy[g.z], dy[g.w]);
    acc += mat4x4<f32>(gv.x * xv, gv.y * xv, gv.z * xv, gv.w * xv);
    ow++;
    if (ow == d.OW) {
      ow = 0u;
      oh++;
      if (oh == d.OH) {
        oh = 0u;
        n++;
      }
    }
  }

  let base = s * d.OC * K;
  for (var i = 0u; i < 4u; i++) {
    let oc = oc0 + i;
    if (oc < d.OC) {
      let v = acc[i];
      let o = base + oc * K + k0;
      dw[o] = v.x;
      if (k0 + 1u < K) { dw[o + 1u] = v.y; }
      if (k0 + 2u < K) { dw[o + 2u] = v.z; }
      if (k0 + 3u < K) { dw[o + 3u] = v.w; }
    }
  }
}
