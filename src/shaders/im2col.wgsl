// The column matrices of a convolution's input (im2col), for images n0 .. n0 + batch - 1:
//   col[b, k, oh, ow] = x[n0 + b, ic, oh*SH - PH + kh, ow*SW - PW + kw]   (0 in the padding)
// for k = (ic, kh, kw) < K = C*KH*KW, so that image b's convolution is the product
// W[OC, K] . col[b] (col[b] a [KP, OH*OW] matrix). Rows k >= K pad the matrix to KP rows: row K
// is ones where ONES_ROW (a bias folded into the product as one more weight column), the rest
// zeros. With FLIP_TAPS, tap (kh, kw) reads the window at (KH-1-kh, KW-1-kw): the columns of the output
// gradient whose product with the weight is the input gradient (a stride-1 convolution's input
// gradient is the convolution of its output gradient with the flipped kernel). Each invocation
// writes one output row (b, k, oh), OW values, so its index arithmetic (the divisions, slow where
// emulated) is paid once per OW values.
override WG: u32 = 64;
override ONES_ROW: bool = false;
override FLIP_TAPS: bool = false;

struct Dims { C: u32, H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, PH: u32, PW: u32, K: u32, KP: u32, n0: u32, rows: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> col: array<f32>;
@group(0) @binding(2) var<uniform> d: Dims;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG; // row (b*KP + k)*OH + oh
  if (i >= d.rows) { return; }
  let oh = i % d.OH;
  let bk = i / d.OH;
  let k = bk % d.KP;
  let b = bk / d.KP;
  let out = i * d.OW;
  if (k >= d.K) {
    let v = select(0.0, 1.0, ONES_ROW && k == d.K);
    for (var ow = 0u; ow < d.OW; ow++) { col[out + ow] = v; }
    return;
  }
  let khw = d.KH * d.KW;
  let ic = k / khw;
  let kh = select((k % khw) / d.KW, d.KH - 1u - (k % khw) / d.KW, FLIP_TAPS);
  let kw = select(k % d.KW, d.KW - 1u - k % d.KW, FLIP_TAPS);
  let ih = i32(oh * d.SH + kh) - i32(d.PH);
  let rowInside = ih >= 0 && ih < i32(d.H);
  let base = ((d.n0 + b) * d.C + ic) * d.H * d.W + select(0u, u32(ih) * d.W, rowInside);
  var iw = i32(kw) - i32(d.PW);
  let W = i32(d.W);
  let SW = i32(d.SW);
  for (var ow = 0u; ow < d.OW; ow++) {
    let inside = rowInside && iw >= 0 && iw < W;
    col[out + ow] = select(0.0, x[base + select(0u, u32(iw), inside)], inside);
    iw += SW;
  }
}
