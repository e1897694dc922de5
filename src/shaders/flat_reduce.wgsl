// First pass of a full reduction over two flat vectors of n elements (src/engine/ops/flat.ts):
// each workgroup writes its partial result; flat_reduce_finish.wgsl sums the partials.
// OP picks what is summed:
//   0  sum a * b                  (dot)
//   1  sum a * a                  (sum of squares; b is not read)
//   2  sum a * b and sum b, as a pair per workgroup (weighted mean: a values, b weights)
//   3  number of non-finite a     (NaN or +-inf, tested on the bits: compilers may assume finite
//                                  math; b is not read)
// Invocations stride over vec4s (coalesced across the grid) with long loops; the workgroup
// combines its WG sums with reduce_pairs (two barriers: slow on CPU-emulated adapters, the more
// so the larger the workgroup, hence 64).
#import "lib/workgroup_pairs.wgsl"

override WG: u32 = 64;
override OP: u32 = 0;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn nonfinite(v: vec4<f32>) -> vec4<f32> {
  let exponent = bitcast<vec4<u32>>(v) & vec4<u32>(0x7f800000u);
  return select(vec4<f32>(0.0), vec4<f32>(1.0), exponent == vec4<u32>(0x7f800000u));
}

struct Terms { first: vec4<f32>, second: vec4<f32> }

// What the vec4 at i adds to the (first, second) running sums; lanes outside keep add nothing.
fn term(i: u32, keep: vec4<bool>) -> Terms {
  let x = a[i];
  let zero = vec4<f32>(0.0);
  switch OP {
    case 0u: { return Terms(select(zero, x * b[i], keep), zero); }
    case 1u: { return Terms(select(zero, x * x, keep), zero); }
    case 2u: {
      let w = b[i];
      return Terms(select(zero, x * w, keep), select(zero, w, keep));
    }
    default: { return Terms(select(zero, nonfinite(x), keep), zero); }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let full = p.n / 4u; // whole vec4s; the last, partial one is masked
  let stride = groups.x * WG;
  let all = vec4<bool>(true);
  var s0 = vec4<f32>(0.0);
  var s1 = vec4<f32>(0.0);
  for (var i = gid.x; i < full; i += stride) {
    let t = term(i, all);
    s0 += t.first;
    s1 += t.second;
  }
  let rest = p.n % 4u;
  if (gid.x == 0u && rest != 0u) {
    let t = term(full, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(rest));
    s0 += t.first;
    s1 += t.second;
  }
  let total = reduce_pairs(vec2<f32>(s0.x + s0.y + s0.z + s0.w, s1.x + s1.y + s1.z + s1.w), lid.x);
  if (lid.x == 0u) {
    if (OP == 2u) {
      partials[2u * wid.x] = total.x;
      partials[2u * wid.x + 1u] = total.y;
    } else {
      partials[wid.x] = total.x;
    }
  }
}
