// The adjoint of gathering a convolution's input windows into columns (col2im), a gather that
// sums (no atomics): for images n0 .. n0 + batch - 1,
//   dx[n0 + b, ic, ih, iw] = sum over (kh, kw) of dcol[b, (ic, kh, kw), oh, ow]
// over the taps where ih + PH - kh = oh*SH and iw + PW - kw = ow*SW for an output (oh, ow) in
// range; dcol[b] is a [K, OH*OW] matrix (K = C*KH*KW), the images one after another. Each invocation sums 4
// consecutive pixels of one input row (b, ic, ih): per kernel row kh it checks the output row once,
// per tap kw it loads the 4 pixels' values, masked where they have no output there. Row block i
// covers columns (i % WB)*4.. of row i / WB (WB = ceil(W / 4)).
override WG: u32 = 64;

struct Dims { C: u32, H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, PH: u32, PW: u32, K: u32, WB: u32, n0: u32, total: u32 }

@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> d: Dims;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= d.total) { return; }
  let iw0 = (i % d.WB) * 4u;
  let row = i / d.WB; // (b*C + ic)*H + ih
  let ih = row % d.H;
  let bc = row / d.H;
  let ic = bc % d.C;
  let b = bc / d.C;
  let ohw = d.OH * d.OW;
  let khw = d.KH * d.KW;
  let SW = vec4<i32>(i32(d.SW));
  let OW = vec4<i32>(i32(d.OW));
  let zero = vec4<i32>(0);
  let cols = vec4<i32>(i32(iw0)) + vec4<i32>(0, 1, 2, 3);
  let real = cols < vec4<i32>(i32(d.W));
  // dcol[b, (ic, 0, 0), 0, 0]
  let first = (b * d.K + ic * khw) * ohw;
  var acc = vec4<f32>(0.0);
  for (var kh = 0u; kh < d.KH; kh++) {
    let th = i32(ih + d.PH) - i32(kh);
    if (th < 0 || th % i32(d.SH) != 0) { continue; }
    let oh = u32(th) / d.SH;
    if (oh >= d.OH) { continue; }
    let tapRow = first + kh * d.KW * ohw + oh * d.OW; // dcol[b, (ic, kh, 0), oh, 0]
    for (var kw = 0u; kw < d.KW; kw++) {
      let tw = cols + vec4<i32>(i32(d.PW) - i32(kw));
      let ow = tw / SW;
      let valid = real & (tw >= zero) & (tw % SW == zero) & (ow < OW);
      let g = vec4<u32>(tapRow + kw * ohw) + vec4<u32>(select(zero, ow, valid));
      acc += select(vec4<f32>(0.0), vec4<f32>(dcol[g.x], dcol[g.y], dcol[g.z], dcol[g.w]), valid);
    }
  }
  let o = ((d.n0 + b) * d.C + ic) * d.H * d.W + ih * d.W + iw0;
  dx[o] = acc.x;
  if (iw0 + 1u < d.W) { dx[o + 1u] = acc.y; }
  if (iw0 + 2u < d.W) { dx[o + 2u] = acc.z; }
  if (iw0 + 3u < d.W) { dx[o + 3u] = acc.w; }
}
