// Gradients of mixture.wgsl (out[b, f] = sum_e gates[b, e] * experts[e, b, f]) from dy [B, F],
// one per dispatch, chosen by GATES:
//   false  d(experts)[e, b, f] = gates[b, e] * dy[b, f]        an invocation per element of dx [E, B, F]
//   true   d(gates)[b, e] = sum_f experts[e, b, f] * dy[b, f]  an invocation per element of dx [B, E]
// The input a gradient does not need (experts, or gates) is not read.
override WG: u32 = 256;
override GATES: bool = false;

struct Params { experts: u32, rows: u32, features: u32 }

@group(0) @binding(0) var<storage, read> experts: array<f32>;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  let size = p.rows * p.features;
  if (GATES) {
    if (i >= p.rows * p.experts) { return; }
    let b = i / p.experts;
    let e = i % p.experts;
    var acc = 0.0;
    for (var f = 0u; f < p.features; f++) {
      acc += experts[e * size + b * p.features + f] * dy[b * p.features + f];
    }
    dx[i] = acc;
  } else {
    if (i >= p.experts * size) { return; }
    let e = i / size;
    let r = i % size;
    dx[i] = gates[(r / p.features) * p.experts + e] * dy[r];
  }
}
