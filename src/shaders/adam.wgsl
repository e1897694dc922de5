// One Adam / AdamW step for a parameter group, as torch.optim.Adam and AdamW:
//   Adam:  g += weight_decay * w            AdamW: w -= lr * weight_decay * w
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
// Weights, gradients and masks are the model's flat buffers (rows of row_size elements, R rows
// stepped at once from row_start: replicas, the z of the grid); m and v are the group's own
// state, its parameters one after another, R rows of state_size. Which parameters, where and how
// far along is the segment table (see optimizer_step.wgsl); each parameter counts its own steps,
// as torch, so its bias corrections bc1 = 1 - b1^t and bc2 = 1 - b2^t come in its entry. Sixteen
// elements (four vec4s) per invocation; the per-step scalars are hoisted out of the loop.
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
  let bc = segment[2u * e.segment + 1u];
  // m / bc1 and sqrt(v / bc2) as products: the reciprocals are per parameter, not per element.
  let step = p.lr / bitcast<f32>(bc.x);
  let rbc2 = 1.0 / bitcast<f32>(bc.y);
  let decay = select(p.weight_decay, p.lr * p.weight_decay, DECOUPLED);
  let b1 = p.beta1;
  let b2 = p.beta2;
  for (var q = 0u; q < CHUNK; q++) {
    let k = e.param_index + q;
    let s = e.state_index + q;
    let on = lanes(e, q);
    let w0 = param[k];
    var w = w0;
    var g = grad[k] * e.grad_scale;
    if (DECOUPLED) {
      w -= decay * w;
    } else {
      g += decay * w;
    }
    let m0 = m1[s];
    let v0 = m2[s];
    let m = b1 * m0 + (1.0 - b1) * g;
    let v = b2 * v0 + (1.0 - b2) * g * g;
    m1[s] = select(m0, m, on);
    m2[s] = select(v0, v, on);
    param[k] = select(w0, w - step * m / (sqrt(v * rbc2) + p.eps), on);
  }
}
