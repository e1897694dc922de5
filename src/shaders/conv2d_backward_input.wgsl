// Conv2d backward with respect to the input, as a gather (a transposed convolution; no atomics):
//   dx[n, ic, ih, iw] = sum over oc, kh, kw of dy[n, oc, oh, ow] * W[oc, ic, kh, kw]
// over the (kh, kw) where ih + PH - kh = oh*SH and iw + PW - kw = ow*SW for an output (oh, ow)
// in range. Each invocation computes a 4x4 register block: 4 input channels x 4 consecutive
// pixels of one row, so per (oc, kh, kw) it loads 4 dy values (one per pixel, masked where the
// pixel has no output there) and 4 weights (one per channel) for 16 multiply-adds. Invocation i
// covers column block i % WB (WB = ceil(W / 4)) of row (i / WB) % H of channel block
// (i / (WB*H)) % CB (CB = ceil(C / 4)) of image i / (WB*H*CB).
override WG: u32 = 64;

struct Dims { N: u32, C: u32, H: u32, W: u32, OC: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, PH: u32, PW: u32, CB: u32, WB: u32, total: u32 }

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= d.total) { return; }
  let wb = i % d.WB;
  let r1 = i / d.WB;
  let ih = r1 % d.H;
  let r2 = r1 / d.H;
  let cb = r2 % d.CB;
  let n = r2 / d.CB;
  let iw0 = wb * 4u;
  let ic0 = cb * 4u;
  let khw = d.KH * d.KW;
  // Offsets of W[0, ic0 + j, 0, 0] (channels past C repeat the last one).
  let wr = vec4<u32>(ic0, min(ic0 + 1u, d.C - 1u), min(ic0 + 2u, d.C - 1u), min(ic0 + 3u, d.C - 1u)) * khw;
  let ohw = d.OH * d.OW;
  let wstride = d.C * khw; // from W[oc, ...] to W[oc + 1, ...]
  let SH = i32(d.SH);
  let SW = vec4<i32>(i32(d.SW));
  let OW = vec4<i32>(i32(d.OW));
  let zero = vec4<i32>(0);
  // Pixels past the row end are masked out.
  let cols = vec4<i32>(i32(iw0)) + vec4<i32>(0, 1, 2, 3);
  let real = cols < vec4<i32>(i32(d.W));
  // acc[j] = channel ic0 + j at the 4 pixels.
  var acc = mat4x4<f32>();
  for (var kh = 0u; kh < d.KH; kh++) {
    let th = i32(ih) + i32(d.PH) - i32(kh);
    if (th < 0 || th % SH != 0) { continue; }
    let oh = u32(th / SH);
    if (oh >= d.OH) { continue; }
    let row = n * d.OC * ohw + oh * d.OW; // dy[n, 0, oh, 0]
    for (var kw = 0u; kw < d.KW; kw++) {
      let tw = cols + vec4<i32>(i32(d.PW) - i32(kw));
      let ow = tw / SW;
      let valid = real & (tw >= zero) & (tw % SW == zero) & (ow < OW);
      if (!any(valid)) { continue; }
      var g = vec4<u32>(row) + vec4<u32>(select(zero, ow, valid)); // dy[n, 0, oh, ow_j] (ow_j 0 where not valid)
      var w = wr + vec4<u32>(kh * d.KW + kw); // W[0, ic0 + j, kh, kw]
      // This tap's sum over the output channels, added only at the pixels that have an output
      // here: a zero standing in for the others' dy would turn a NaN or infinite weight into NaN.
      var tap = mat4x4<f32>();
      for (var oc = 0u; oc < d.OC; oc++) {
        let gv = vec4<f32>(dy[g.x], dy[g.y], dy[g.z], dy[g.w]);
        let wv = vec4<f32>(weight[w.x], weight[w.y], weight[w.z], weight[w.w]);
        tap += mat4x4<f32>(wv.x * gv, wv.y * gv, wv.z * gv, wv.w * gv);
        g += vec4<u32>(ohw);
        w += vec4<u32>(wstride);
      }
      let none = vec4<f32>(0.0);
      acc += mat4x4<f32>(select(none, tap[0], valid), select(none, tap[1], valid), select(none, tap[2], valid), select(none, tap[3], valid));
    }
  }
  let hw = d.H * d.W;
  for (var j = 0u; j < 4u; j++) {
    let ic = ic0 + j;
    if (ic < d.C) {
      let v = acc[j];
      let o = (n * d.C + ic) * hw + ih * d.W + iw0;
      dx[o] = v.x;
      if (iw0 + 1u < d.W) { dx[o + 1u] = v.y; }
      if (iw0 + 2u < d.W) { dx[o + 2u] = v.z; }
      if (iw0 + 3u < d.W) { dx[o + 3u] = v.w; }
    }
  }
}
