// 2-D max or average pooling over NCHW planes, no padding: one invocation per output element.
//   MAX: out = max over the KHxKW window at (oh*SH, ow*SW), NaN when the window holds a NaN (its
//        first maximum in row-major order, window_argmax). With SAVE_ARGMAX (only when the graph is
//        recorded) it also writes the maximum's offset within its plane to argmax[i], which
//        pool2d_backward routes dy with instead of searching the window again.
//   else: out = mean over the window (argmax unused).
#import "lib/float.wgsl"
override MAX: bool = true;
override SAVE_ARGMAX: bool = false;
override WG: u32 = 256;

struct Dims { planes: u32, H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, total: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(3) var<uniform> d: Dims;

// The first maximum of the window at (top, left) in row-major order, as an offset within the
// plane. NaN counts as above everything: a window holding one has its first NaN as its maximum,
// so the pooled value is NaN and the gradient goes to that element.
fn window_argmax(plane: u32, top: u32, left: u32) -> u32 {
  let base = plane * d.H * d.W;
  var at = top * d.W + left;
  var best = x[base + at];
  for (var kh = 0u; kh < d.KH; kh++) {
    for (var kw = 0u; kw < d.KW; kw++) {
      let o = (top + kh) * d.W + left + kw;
      let v = x[base + o];
      if (!is_nan(best) && (v > best || is_nan(v))) {
        best = v;
        at = o;
      }
    }
  }
  return at;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= d.total) { return; }
  let ohw = d.OH * d.OW;
  let plane = i / ohw;
  let pix = i % ohw;
  let top = (pix / d.OW) * d.SH;
  let left = (pix % d.OW) * d.SW;
  if (MAX) {
    let at = window_argmax(plane, top, left);
    out[i] = x[plane * d.H * d.W + at];
    if (SAVE_ARGMAX) { argmax[i] = at; }
    return;
  }
  let base = plane * d.H * d.W + top * d.W + left;
  var total = 0.0;
  for (var kh = 0u; kh < d.KH; kh++) {
    for (var kw = 0u; kw < d.KW; kw++) {
      total += x[base + kh * d.W + kw];
    }
  }
  out[i] = total / f32(d.KH * d.KW);
}
