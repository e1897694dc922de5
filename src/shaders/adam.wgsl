// One Adam / AdamW step for a parameter group, as torch.optim.Adam and AdamW:
//   Adam:  g += weight_decay * w            AdamW: w -= lr * weight_decay * w
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
// Weights, gradients and masks are the model's flat buffers (rows of row_size elements, R rows
// stepped at once from row_start: replicas, the z of the grid); m and v are the group's own
// state, its parameters one after another, R rows of state_size. Which parameters, where and how
// far along is the segment table (see optimizer_step.wgsl); each parameter counts its own steps,
// as torch, so its bias corrections bc1 = 1 - b1^t and bc2 = 1 - b2^t come in its entry. Four
// elements per invocation.
#import "lib/optimizer_step.wgsl"

override DECOUPLED: bool = false;

struct Params { state_size: u32, row_size: u32, row_start: u32, segments: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, max_norm: f32 }

@group(0) @binding(0) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> m1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read> segment: array<vec4<u32>>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let e = locate(gid.x + gid.y * groups.x * WG, gid.z, p.state_size, p.row_size, p.row_start, p.segments);
  if (!e.update) { return; }
  let k = e.param_index;
  let s = e.state_index;
  let bc = segment[2u * e.segment + 1u];
  let w0 = param[k];
  var w = w0;
  var g = grad[k] * e.grad_scale;
  if (DECOUPLED) {
    w -= p.lr * p.weight_decay * w;
  } else {
    g += p.weight_decay * w;
  }
  let m0 = m1[s];
  let v0 = m2[s];
  let m = p.beta1 * m0 + (1.0 - p.beta1) * g;
  let v = p.beta2 * v0 + (1.0 - p.beta2) * g * g;
  m1[s] = select(m0, m, e.lanes);
  m2[s] = select(v0, v, e.lanes);
  param[k] = select(w0, w - p.lr * (m / bitcast<f32>(bc.x)) / (sqrt(v / bitcast<f32>(bc.y)) + p.eps), e.lanes);
}
