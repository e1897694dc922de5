// out = f(x) elementwise, f the op numbered OP in lib/activation.wgsl; alpha is f's parameter
// where it has one (leaky_relu slope, scale factor, clip norm).
#import "lib/activation.wgsl"
override WG: u32 = 256;
override OP: u32 = ACT_NONE;

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  out[i] = act_value(OP, x[i], p.alpha);
}
