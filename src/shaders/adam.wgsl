// One Adam / AdamW step for a parameter group packed in one buffer, as torch.optim.Adam and AdamW:
//   Adam:  g += weight_decay * w            AdamW: w -= lr * weight_decay * w
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
// Each parameter counts its own steps (as torch), so bc1 = 1 - b1^t and bc2 = 1 - b2^t come per
// parameter from the segment table: (first element, end, bc1 bits, bc2 bits), sorted by position.
// Elements whose mask is 0 (masked, frozen, without a gradient this step, or gaps between the
// packed parameters) are left exactly as they are, moments included.
override WG: u32 = 256;
override DECOUPLED: bool = false;

struct Params { n: u32, segments: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32 }

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m1: array<f32>;
@group(0) @binding(3) var<storage, read_write> m2: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read> clip: array<f32>;
@group(0) @binding(6) var<storage, read> segment: array<vec4<u32>>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  if (mask[i] == 0.0) { return; }
  // The last segment starting at or before i (binary search over the sorted table).
  var lo = 0u;
  var hi = p.segments;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (segment[mid].x <= i) { lo = mid; } else { hi = mid; }
  }
  let bc1 = bitcast<f32>(segment[lo].z);
  let bc2 = bitcast<f32>(segment[lo].w);
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
  param[i] = w - p.lr * (m / bc1) / (sqrt(v / bc2) + p.eps);
}
