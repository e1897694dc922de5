// One SGD step for a parameter group packed in one buffer, as torch.optim.SGD (dampening 0):
//   g = grad * clip + weight_decay * w;  v = momentum * v + g;  w -= lr * (nesterov ? g + momentum * v : v)
// Elements whose mask is 0 (masked, frozen, without a gradient this step, or gaps between the
// packed parameters) are left exactly as they are, velocity included.
override WG: u32 = 256;
override HAS_MOMENTUM: bool = false;
override NESTEROV: bool = false;

struct Params { n: u32, lr: f32, momentum: f32, weight_decay: f32 }

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> velocity: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> clip: array<f32>; // global-norm clip factor, 1 when not clipping
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  if (mask[i] == 0.0) { return; }
  let w = param[i];
  var g = grad[i] * clip[0] + p.weight_decay * w;
  if (HAS_MOMENTUM) {
    let v = p.momentum * velocity[i] + g;
    velocity[i] = v;
    g = select(v, g + p.momentum * v, NESTEROV);
  }
  param[i] = w - p.lr * g;
}
