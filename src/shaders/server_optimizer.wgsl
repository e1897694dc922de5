// One round of a federated server optimizer (src/engine/ops/server.ts): from the global weights
// x [n] and the average client delta d [n] (FedAvg of client weights - global), the new global
// weights, updating the optimizer's state in place; an invocation per element. As Flower's
// FedAvgM and FedOpt strategies (Reddi et al. 2021, "Adaptive Federated Optimization"):
//   VARIANT 0, FedAvgM:    m = momentum m - d (the pseudo-gradient x - avg is -d); x' = x - rate m
//   VARIANT 1, FedAdam:    m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d^2;
//                          x' = x + rate m / (sqrt(v) + tau)  (rate: eta with Adam's bias correction)
//   VARIANT 2, FedYogi:    m as FedAdam; v = v - (1 - b2) d^2 sign(v - d^2); x' as FedAdam
//   VARIANT 3, FedAdagrad: v = v + d^2; x' = x + rate d / (sqrt(v) + tau)  (Flower's beta_1 = 0: m = d)
// State starts at zero, so FedAvgM's first round gives m = -d as Flower's. A variant's unused
// state binding gets a placeholder it never touches.
override WG: u32 = 256;
override VARIANT: u32 = 0u;

struct Params { n: u32, rate: f32, beta1: f32, beta2: f32, tau: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> d: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let delta = d[i];
  if (VARIANT == 0u) {
    let momentum = p.beta1 * m[i] - delta;
    m[i] = momentum;
    out[i] = x[i] - p.rate * momentum;
    return;
  }
  let d2 = delta * delta;
  var first = delta;
  var second = v[i] + d2; // FedAdagrad
  if (VARIANT == 1u || VARIANT == 2u) {
    first = p.beta1 * m[i] + (1.0 - p.beta1) * delta;
    m[i] = first;
  }
  if (VARIANT == 1u) {
    second = p.beta2 * v[i] + (1.0 - p.beta2) * d2;
  } else if (VARIANT == 2u) {
    second = v[i] - (1.0 - p.beta2) * d2 * sign(v[i] - d2);
  }
  v[i] = second;
  out[i] = x[i] + p.rate * first / (sqrt(second) + p.tau);
}
