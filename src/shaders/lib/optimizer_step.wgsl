// What every optimizer kernel shares: from the invocation index, the element to update.
// Invocation i covers element j = i % state_size of state row r = i / state_size. The segment
// table lists the parameters updated this step, sorted by state offset, two vec4<u32> each:
//   (state start, state end, first element within a row of the flat buffers, masked),
//   (per-optimizer values, such as Adam's bias corrections as f32 bits)
// Elements outside every segment (frozen, without a gradient this step, gaps), elements whose
// mask is 0, and, with SKIP_NONFINITE, every element of a row whose gradients hold NaN or inf
// are left exactly as they are, optimizer state included. With CLIP, gradients are scaled by
// min(1, max_norm / (||g|| + 1e-6)) (torch's clip_grad_norm_), ||g|| from stats[2 r] (the sum of
// squares, grad_stats.wgsl); stats[2 r + 1] counts the row's non-finite gradients.
// The importer declares `mask`, `stats`, `segment` and the uniform `p.max_norm`.
#import "lib/float.wgsl"

override WG: u32 = 256;
override CLIP: bool = false;
override SKIP_NONFINITE: bool = false;
override MASKED: bool = false;

struct Element {
  update: bool,
  segment: u32,
  state_index: u32,
  param_index: u32,
  grad_scale: f32,
}

fn locate(i: u32, n: u32, state_size: u32, row_size: u32, row_start: u32, segments: u32) -> Element {
  var e = Element(false, 0u, 0u, 0u, 1.0);
  if (i >= n) { return e; }
  let r = i / state_size;
  let j = i % state_size;
  // The last segment starting at or before j (binary search over the sorted table).
  var lo = 0u;
  var hi = segments;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (segment[2u * mid].x <= j) { lo = mid; } else { hi = mid; }
  }
  let seg = segment[2u * lo];
  if (j < seg.x || j >= seg.y) { return e; }
  let k = (row_start + r) * row_size + seg.z + (j - seg.x);
  if (MASKED && seg.w != 0u && mask[k] == 0.0) { return e; }
  if (SKIP_NONFINITE && stats[2u * r + 1u] != 0.0) { return e; }
  if (CLIP) {
    let c = p.max_norm / (sqrt(stats[2u * r]) + 1e-6);
    // min() may drop a NaN; a NaN norm must reach the weights (IEEE), not clip to 1.
    e.grad_scale = select(min(1.0, c), c, is_nan(c));
  }
  e.update = true;
  e.segment = lo;
  e.state_index = r * state_size + j;
  e.param_index = k;
  return e;
}
