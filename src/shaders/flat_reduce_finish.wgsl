// Second pass of the flat reductions (flat_reduce.wgsl, accuracy.wgsl): one workgroup sums the
// `count` partial results and writes the op's value to out[0]. PAIRS: the partials are
// (numerator, denominator) pairs. EPILOGUE picks the value from the total s:
//   0  s                                   (dot, sum of squares, counts)
//   1  sqrt(s)                             (L2 norm)
//   2  min(1, alpha / sqrt(s)), 1 at 0     (clipToNorm's factor for maxNorm = alpha)
//   3  s.num / s.den, 0 where s.den == 0   (weighted mean, accuracy); also leaves the totals in
//                                          partials[0] and partials[1] for the backward
#import "lib/workgroup_pairs.wgsl"

override WG: u32 = 64;
override PAIRS: bool = false;
override EPILOGUE: u32 = 0;

struct Params { count: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read_write> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = vec2<f32>(0.0);
  for (var i = lid.x; i < p.count; i += WG) {
    if (PAIRS) {
      s += vec2<f32>(partials[2u * i], partials[2u * i + 1u]);
    } else {
      s.x += partials[i];
    }
  }
  let total = reduce_pairs(s, lid.x);
  if (lid.x != 0u) {
    return;
  }
  switch EPILOGUE {
    case 0u: { out[0] = total.x; }
    case 1u: { out[0] = sqrt(total.x); }
    case 2u: {
      let norm = sqrt(total.x);
      // No division by zero (select evaluates both sides): a zero vector is left as it is.
      let clipped = norm > p.alpha;
      out[0] = select(1.0, p.alpha / select(1.0, norm, clipped), clipped);
    }
    default: {
      let some = total.y != 0.0;
      out[0] = select(0.0, total.x / select(1.0, total.y, some), some);
      partials[0] = total.x;
      partials[1] = total.y;
    }
  }
}
