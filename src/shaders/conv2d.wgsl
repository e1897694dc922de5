// Conv2d forward as an implicit GEMM (no im2col buffer is materialised). With NCHW x, weight
// [OC, C, KH, KW] seen as a matrix W[OC, K] (K = C*KH*KW, k = (ic, kh, kw)) and the output
// positions p = (n, oh, ow) (P = N*OH*OW of them):
//   out[n, oc, oh, ow] = bias[oc] + sum_k W[oc, k] * x[n, ic, oh*SH - PH + kh, ow*SW - PW + kw]
// i.e. C[OC, P] = W[OC, K] . X[K, P] where X is gathered from x on the fly (0 in the padding).
//
// Each invocation computes a 4x4 register block: 4 output channels x 4 consecutive positions.
// Per step of 4 along K it loads the 4x4 tile of W (with ALIGNED, K a multiple of 4: four vec4
// rows, no checks; otherwise scalar loads through a second, scalar binding of the weight) and, for each of the 4 k, gathers the 4 positions'
// inputs as one vec4 with vectorised bounds checks, then does 16 multiply-adds. The (ic, kh, kw)
// of k advance as counters, so there is no division in the loop. The epilogue adds the bias
// (HAS_BIAS) and applies the activation ACT (as matmul's epilogue: an op of lib/activation.wgsl
// whose derivative follows from the output, alpha its slope for leaky_relu). Grid: x (and y past
// the per-dimension limit) over blocks of 4 positions, z over blocks of 4 output channels.
#import "lib/activation.wgsl"
override ALIGNED: bool = false;
override HAS_BIAS: bool = false;
override ACT: u32 = ACT_NONE;
override WG: u32 = 64;

struct Dims { N: u32, C: u32, H: u32, W: u32, OC: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, PH: u32, PW: u32, K: u32, P: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;
// The same weight as scalars, for the unaligned path.
@group(0) @binding(5) var<storage, read> weight_scalar: array<f32>;

// For output position p: (offset of x[n, 0, 0, 0], first input row, first input column) of its
// window, and the offset of out[n, 0, oh, ow].
fn origin(p: u32) -> vec4<i32> {
  let ohw = d.OH * d.OW;
  let n = p / ohw;
  let pix = p % ohw;
  let oh = pix / d.OW;
  let ow = pix % d.OW;
  return vec4<i32>(i32(n * d.C * d.H * d.W), i32(oh * d.SH) - i32(d.PH), i32(ow * d.SW) - i32(d.PW), i32(n * d.OC * ohw + pix));
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let p0 = ((wid.x + wid.y * groups.x) * WG + lid.x) * 4u; // first position of this block
  let oc0 = wid.z * 4u; // first output channel
  if (p0 >= d.P || oc0 >= d.OC) { return; }
  let last = d.P - 1u;
  // Positions past the end repeat the last one: computed, never stored.
  let o0 = origin(p0);
  let o1 = origin(min(p0 + 1u, last));
  let o2 = origin(min(p0 + 2u, last));
  let o3 = origin(min(p0 + 3u, last));
  let base = vec4<i32>(o0.x, o1.x, o2.x, o3.x);
  let ih0 = vec4<i32>(o0.y, o1.y, o2.y, o3.y);
  let iw0 = vec4<i32>(o0.z, o1.z, o2.z, o3.z);
  let H = vec4<i32>(i32(d.H));
  let W = vec4<i32>(i32(d.W));
  let zero = vec4<i32>(0);
  let HW = i32(d.H * d.W);
  let KH = i32(d.KH);
  let KW = i32(d.KW);
  let K = d.K;
  // Row offsets of the 4 output channels in W (channels past OC repeat the last one).
  let r0 = oc0 * K;
  let r1 = min(oc0 + 1u, d.OC - 1u) * K;
  let r2 = min(oc0 + 2u, d.OC - 1u) * K;
  let r3 = min(oc0 + 3u, d.OC - 1u) * K;

  // acc[i] = output channel oc0 + i at the 4 positions.
  var acc = mat4x4<f32>();
  var coff = 0i; // ic * H * W of the current k
  var kh = 0i;
  var kw = 0i;
  for (var k0 = 0u; k0 < K; k0 += 4u) {
    // wt[t] = W[oc0 .. oc0 + 3, k0 + t]
    var wt: mat4x4<f32>;
    if (ALIGNED) {
      wt = transpose(mat4x4<f32>(weight[(r0 + k0) >> 2u], weight[(r1 + k0) >> 2u], weight[(r2 + k0) >> 2u], weight[(r3 + k0) >> 2u]));
    } else {
      for (var t = 0u; t < 4u; t++) {
        let k = min(k0 + t, K - 1u);
        wt[t] = vec4<f32>(weight_scalar[r0 + k], weight_scalar[r1 + k], weight_scalar[r2 + k], weight_scalar[r3 + k]);
      }
    }
    let steps = min(4u, K - k0);
    for (var t = 0u; t < steps; t++) {
      let ih = ih0 + vec4<i32>(kh);
      let iw = iw0 + vec4<i32>(kw);
      let inside = (ih >= zero) & (ih < H) & (iw >= zero) & (iw < W);
      let idx = select(zero, base + vec4<i32>(coff) + ih * W + iw, inside);
      let xv = select(vec4<f32>(0.0), vec4<f32>(x[idx.x], x[idx.y], x[idx.z], x[idx.w]), inside);
      let wc = wt[t];
      acc += mat4x4<f32>(wc.x * xv, wc.y * xv, wc.z * xv, wc.w * xv);
      kw++;
      if (kw == KW) {
        kw = 0;
        kh++;
        if (kh == KH) {
          kh = 0;
          coff += HW;
        }
      }
    }
  }

  let ob = vec4<u32>(u32(o0.w), u32(o1.w), u32(o2.w), u32(o3.w));
  let ohw = d.OH * d.OW;
  for (var i = 0u; i < 4u; i++) {
    let oc = oc0 + i;
    if (oc < d.OC) {
      var v = acc[i];
      if (HAS_BIAS) { v += vec4<f32>(bias[oc]); }
      v = vec4<f32>(act_value(ACT, v.x, d.alpha), act_value(ACT, v.y, d.alpha), act_value(ACT, v.z, d.alpha), act_value(ACT, v.w, d.alpha));
      let off = oc * ohw;
      out[ob.x + off] = v.x;
      if (p0 + 1u < d.P) { out[ob.y + off] = v.y; }
      if (p0 + 2u < d.P) { out[ob.z + off] = v.z; }
      if (p0 + 3u < d.P) { out[ob.w + off] = v.w; }
    }
  }
}
