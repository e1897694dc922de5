// One SGD step for a parameter group, as torch.optim.SGD (dampening 0):
//   g = grad + weight_decay * w;  v = momentum * v + g;  w -= lr * (nesterov ? g + momentum * v : v)
// Weights, gradients and masks are the model's flat buffers (rows of row_size elements, R rows
// stepped at once from row_start: replicas, the z of the grid); the velocity is the group's own
// state, its parameters one after another, R rows of state_size. Which parameters and where is
// the segment table (see optimizer_step.wgsl). Sixteen elements (four vec4s) per invocation.
#import "lib/optimizer_step.wgsl"

override HAS_MOMENTUM: bool = false;
override NESTEROV: bool = false;

struct Params { state_size: u32, row_size: u32, row_start: u32, segments: u32, lr: f32, momentum: f32, weight_decay: f32, max_norm: f32 }

@group(0) @binding(0) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> velocity: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mask: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> segment: array<vec4<u32>>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let e = locate(gid.x + gid.y * groups.x * WG, gid.z, p.state_size, p.row_size, p.row_start, p.segments);
  if (!e.update) { return; }
  for (var q = 0u; q < CHUNK; q++) {
    let k = e.param_index + q;
    let on = lanes(e, q);
    let w = param[k];
    var g = grad[k] * e.grad_scale + p.weight_decay * w;
    if (HAS_MOMENTUM) {
      let s = e.state_index + q;
      let v0 = velocity[s];
      let v = p.momentum * v0 + g;
      velocity[s] = select(v0, v, on);
      g = select(v, g + p.momentum * v, NESTEROV);
    }
    param[k] = select(w, w - p.lr * g, on);
  }
}
