// What every optimizer kernel shares: from the invocation, the CHUNK vec4s (16 elements) to
// update. An invocation takes elements j .. j + 15 of the group's state (x and y of the grid; j a
// multiple of 16) in state row r (z: replicas), as four vec4s: parameters start at multiples of
// 64 elements in the flat buffers and in the state, so a chunk never straddles two parameters,
// and the segment search (the costly part of a step on SwiftShader: with one vec4 an invocation
// it took half the kernel's time) is done once for all four. The segment table lists
// the parameters updated this step, sorted by state offset, two vec4<u32> each:
//   (state start, state end, first element within a row of the flat buffers, masked),
//   (per-optimizer values, such as Adam's bias corrections as f32 bits)
// Elements outside every segment (frozen, without a gradient this step, the padding after a
// parameter), elements whose mask is 0, and, with SKIP_NONFINITE, every element of a row whose
// gradients hold NaN or inf are left exactly as they are, optimizer state included: lanes(e, q)
// says which of vec4 q's four to write. With CLIP, gradients are scaled by min(1, max_norm / (||g|| + 1e-6))
// (torch's clip_grad_norm_), ||g|| from stats[2 r] (the sum of squares, grad_stats.wgsl);
// stats[2 r + 1] counts the row's non-finite gradients.
// The importer declares `mask` (array<vec4<f32>>), `stats`, `segment` and the uniform `p.max_norm`.
#import "lib/float.wgsl"

override WG: u32 = 256;
override CLIP: bool = false;
override SKIP_NONFINITE: bool = false;
override MASKED: bool = false;
// vec4s an invocation (the host sizes the grid by it: OPTIMIZER_CHUNK in optim.ts).
const CHUNK = 4u;

struct Elements {
  update: bool,
  // state elements of the chunk inside the segment: j + 4q + lane < end
  first: u32,
  end: u32,
  masked: bool,
  segment: u32,
  // vec4 indices of the chunk's first vec4 into the state and into the flat buffers
  state_index: u32,
  param_index: u32,
  grad_scale: f32,
}

// Which of the four elements of the chunk's vec4 q (0 .. CHUNK - 1) to write.
fn lanes(e: Elements, q: u32) -> vec4<bool> {
  var l = vec4<u32>(e.first + 4u * q) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(e.end);
  if (MASKED && e.masked) { l = l & (mask[e.param_index + q] != vec4<f32>(0.0)); }
  return l;
}

fn locate(invocation: u32, r: u32, state_size: u32, row_size: u32, row_start: u32, segments: u32) -> Elements {
  var e = Elements(false, 0u, 0u, false, 0u, 0u, 0u, 1.0);
  let j = 4u * CHUNK * invocation;
  if (j >= state_size) { return e; }
  // The last segment starting at or before j (binary search over the sorted table).
  var lo = 0u;
  var hi = segments;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (segment[2u * mid].x <= j) { lo = mid; } else { hi = mid; }
  }
  let seg = segment[2u * lo];
  if (j < seg.x || j >= seg.y) { return e; }
  let k = ((row_start + r) * row_size + seg.z + (j - seg.x)) / 4u;
  if (SKIP_NONFINITE && stats[2u * r + 1u] != 0.0) { return e; }
  if (CLIP) {
    let c = p.max_norm / (sqrt(stats[2u * r]) + 1e-6);
    // min() may drop a NaN; a NaN norm must reach the weights (IEEE), not clip to 1.
    e.grad_scale = select(min(1.0, c), c, is_nan(c));
  }
  e.update = true;
  e.first = j;
  e.end = seg.y;
  e.masked = seg.w != 0u;
  e.segment = lo;
  e.state_index = (r * state_size + j) / 4u;
  e.param_index = k;
  return e;
}
