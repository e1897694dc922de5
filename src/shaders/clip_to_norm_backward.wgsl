// Gradient of y = x * c, c = min(1, M / ||x||) (clipToNorm, src/engine/ops/flat.ts):
//   unclipped (c == 1):  dx = dy
//   clipped (c = M/||x||): dx = c dy - (M / ||x||^3) (dy . x) x = c dy - (c^3 / M^2) (dy . x) x
// factor[0] is the forward's c and dydotx[0] is dy . x (a flat reduction), so ||x|| is not needed.
override WG: u32 = 256;

struct Params { n: u32, max_norm: f32 }

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> factor: array<f32>;
@group(0) @binding(3) var<storage, read> dydotx: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i * 4u >= p.n) { return; }
  let c = factor[0];
  let r = c / p.max_norm;
  let beta = select(0.0, -dydotx[0] * c * r * r, c < 1.0);
  var g = c * dy[i];
  if (c < 1.0) {
    g += beta * x[i];
  }
  // The last vec4 may run past n: leave the elements there as they are.
  if (i * 4u + 4u > p.n) {
    g = select(dx[i], g, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n - i * 4u));
  }
  dx[i] = g;
}
