// dx = dy * f'(x), f the op numbered OP in lib/activation.wgsl, with f's output y at hand where
// f' is cheaper from it (sigmoid, tanh, exp). For an activation applied in a matmul or conv2d
// epilogue, x is bound to the output too (the pre-activation is not kept).
#import "lib/activation.wgsl"
override WG: u32 = 256;
override OP: u32 = ACT_NONE;

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  dx[i] = dy[i] * act_derivative(OP, x[i], y[i], p.alpha);
}
