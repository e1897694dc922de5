// Backward of pool2d, as a gather (no atomics): one invocation per input element sums dy over
// the windows that contain it. MAX: only windows whose first maximum (lib/window_argmax.wgsl, as
// in the forward; a NaN counts as the maximum) is this element, so ties send the gradient to
// exactly one element. Average: every containing window, times 1 / (KH*KW).
#import "lib/window_argmax.wgsl"
override MAX: bool = true;
override WG: u32 = 256;

struct Dims { planes: u32, H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, total: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= d.total) { return; }
  let hw = d.H * d.W;
  let plane = i / hw;
  let pix = i % hw;
  let ih = pix / d.W;
  let iw = pix % d.W;
  // Windows (oh, ow) with oh*SH <= ih < oh*SH + KH (likewise for ow): oh = ih / SH - a for
  // a < ceil(KH / SH). The loops have uniform bounds; the checks mask their bodies.
  let nh = (d.KH + d.SH - 1u) / d.SH;
  let nw = (d.KW + d.SW - 1u) / d.SW;
  let scale = 1.0 / f32(d.KH * d.KW);
  var acc = 0.0;
  for (var a = 0u; a < nh; a++) {
    let oh = i32(ih / d.SH) - i32(a);
    for (var b = 0u; b < nw; b++) {
      let ow = i32(iw / d.SW) - i32(b);
      let inside = oh >= 0 && u32(oh) < d.OH && ih < u32(oh) * d.SH + d.KH && ow >= 0 && u32(ow) < d.OW && iw < u32(ow) * d.SW + d.KW;
      if (inside) {
        let g = dy[plane * d.OH * d.OW + u32(oh) * d.OW + u32(ow)];
        if (MAX) {
          if (window_argmax(plane, u32(oh) * d.SH, u32(ow) * d.SW) == pix) { acc += g; }
        } else {
          acc += g * scale;
        }
      }
    }
  }
  dx[i] = acc;
}
