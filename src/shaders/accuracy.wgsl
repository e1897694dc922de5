// First pass of accuracy (src/engine/ops/flat.ts) over logits and targets [rows, cols]: each
// workgroup writes the pair (correct rows, labelled rows) of the rows its invocations stride over;
// flat_reduce_finish.wgsl (PAIRS, ratio) sums the pairs and divides. A row is labelled when its
// targets are not all zero, and correct when the first largest logit is at the first largest
// target. A row with a NaN logit is wrong. Values are compared as integers that order like the
// floats (infinities included, -0 as +0), and NaN is found on the bits, so the result does not
// depend on how the compiler treats non-finite floats.
#import "lib/workgroup_pairs.wgsl"

override WG: u32 = 64;

struct Params { rows: u32, cols: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn is_nan(bits: u32) -> bool {
  return (bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0u;
}

// A key that orders like the (non-NaN) float: flip all bits of negatives, the sign bit of the rest.
fn order_key(bits: u32) -> u32 {
  let b = select(bits, 0u, bits == 0x80000000u); // -0 is +0
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  var s = vec2<f32>(0.0); // (correct, labelled)
  for (var r = gid.x; r < p.rows; r += groups.x * WG) {
    let base = r * p.cols;
    var labelled = false;
    var nan = false;
    var best_logit = 0u;
    var best_target = 0u;
    var arg_logit = 0u;
    var arg_target = 0u;
    for (var c = 0u; c < p.cols; c++) {
      let lb = bitcast<u32>(logits[base + c]);
      let tb = bitcast<u32>(targets[base + c]);
      nan = nan || is_nan(lb);
      labelled = labelled || (tb & 0x7fffffffu) != 0u;
      let lk = order_key(lb);
      let tk = order_key(tb);
      if (c == 0u || lk > best_logit) {
        best_logit = lk;
        arg_logit = c;
      }
      if (c == 0u || tk > best_target) {
        best_target = tk;
        arg_target = c;
      }
    }
    if (labelled) {
      s += vec2<f32>(select(0.0, 1.0, !nan && arg_logit == arg_target), 1.0);
    }
  }
  let t = reduce_pairs(s, lid.x);
  if (lid.x == 0u) {
    partials[2u * wid.x] = t.x;
    partials[2u * wid.x + 1u] = t.y;
  }
}
