// Backward of pool2d, without atomics. MAX: a window's dy goes only to its saved argmax
// (pool2d's SAVE_ARGMAX: the first maximum, a NaN counting as the maximum), so ties send it to
// exactly one element. Average: to every element of the window, times 1 / (KH*KW) (argmax unused).
//   OVERLAP false (KH <= SH and KW <= SW: windows never share an element): one invocation per
//     output element writes all of dx in its stride cell, rows oh*SH .. (oh+1)*SH (to H for the
//     last row of windows; likewise columns), so the cells cover dx and nothing needs zeroing.
//   OVERLAP true: a gather, one invocation per input element summing dy over the windows that
//     contain it.
override MAX: bool = true;
override OVERLAP: bool = true;
override WG: u32 = 256;

struct Dims { planes: u32, H: u32, W: u32, OH: u32, OW: u32, KH: u32, KW: u32, SH: u32, SW: u32, total: u32 }

@group(0) @binding(0) var<storage, read> argmax: array<u32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;

// The stride cell of output element i (OVERLAP false; d.total counts outputs).
fn scatter(i: u32) {
  let ohw = d.OH * d.OW;
  let plane = i / ohw;
  let oh = (i % ohw) / d.OW;
  let ow = (i % ohw) % d.OW;
  let top = oh * d.SH;
  let left = ow * d.SW;
  let bottom = select(top + d.SH, d.H, oh + 1u == d.OH);
  let right = select(left + d.SW, d.W, ow + 1u == d.OW);
  let g = dy[i];
  let at = select(0u, argmax[i], MAX);
  let base = plane * d.H * d.W;
  for (var ih = top; ih < bottom; ih++) {
    for (var iw = left; iw < right; iw++) {
      let o = ih * d.W + iw;
      var v = 0.0;
      if (MAX) {
        v = select(0.0, g, o == at);
      } else {
        v = select(0.0, g / f32(d.KH * d.KW), ih < top + d.KH && iw < left + d.KW);
      }
      dx[base + o] = v;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= d.total) { return; }
  if (!OVERLAP) {
    scatter(i);
    return;
  }
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
        let o = plane * d.OH * d.OW + u32(oh) * d.OW + u32(ow);
        if (MAX) {
          if (argmax[o] == pix) { acc += dy[o]; }
        } else {
          acc += dy[o] * scale;
        }
      }
    }
  }
  dx[i] = acc;
}
