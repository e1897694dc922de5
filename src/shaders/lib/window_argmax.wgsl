// The first maximum of a max-pooling window in row-major order, for pool2d and pool2d_backward,
// which must agree on it. NaN counts as above everything: a window holding one has its first NaN
// as its maximum, so the pooled value is NaN and the gradient goes to that element. The
// importing shader declares x (the input planes) and d (with H, W, KH, KW).
#import "lib/float.wgsl"

// Offset within the plane of the first maximum of the window at (top, left).
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
