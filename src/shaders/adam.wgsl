// One Adam / AdamW step for one parameter, as torch.optim.Adam and AdamW:
//   Adam:  g += weight_decay * w            AdamW: w -= lr * weight_decay * w
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
// bc1 = 1 - b1^t and bc2 = 1 - b2^t come from the CPU, which counts the steps.
// Elements whose mask is 0 are left exactly as they are, moments included.
override WG: u32 = 256;
override HAS_MASK: bool = false;
override DECOUPLED: bool = false;

struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, bc1: f32, bc2: f32 }

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m1: array<f32>;
@group(0) @binding(3) var<storage, read_write> m2: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> clip: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  if (HAS_MASK && mask[i] == 0.0) { return; }
  var w = param[i];
  var g = grad[i] * clip[0];
  if (DECOUPLED) {
    w -= p.lr * p.weight_decay * w;
  } else {
    g += p.weight_decay * w;
  }
  let m = p.beta1 * m1[i] + (1.0 - p.beta1) * g;
  let v = p.beta2 * m2[i] + (1.0 - p.beta2) * g * g;
  m1[i] = m;
  m2[i] = v;
  param[i] = w - p.lr * (m / p.bc1) / (sqrt(v / p.bc2) + p.eps);
}
