// 2-D max or average pooling over NCHW planes, no padding: one invocation per output element.
//   MAX: out = max over the KHxKW window at (oh*SH, ow*SW), NaN when the window holds a NaN (its
//        first maximum, lib/window_argmax.wgsl, which the backward recomputes to route dy).
//   else: out = mean over the window.
#import "lib/window_argmax.wgsl"
override MAX: bool = true;
override WG: u32 = 256;

struct Dims { planes: u32, H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, total: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> d: Dims;

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
    out[i] = x[plane * d.H * d.W + window_argmax(plane, top, left)];
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
