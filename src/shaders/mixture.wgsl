// The gated combination of a mixture of experts (MMoE; src/engine/ops/mixture.ts):
// out[b, f] = sum_e gates[b, e] * experts[e, b, f], for experts [E, B, F] and gates [B, E].
// An invocation per output element loops over the E experts; neighbouring invocations read
// neighbouring features of each expert (coalesced).
override WG: u32 = 256;

struct Params { experts: u32, rows: u32, features: u32 }

@group(0) @binding(0) var<storage, read> experts: array<f32>;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  let size = p.rows * p.features;
  if (i >= size) { return; }
  let b = i / p.features;
  var acc = 0.0;
  for (var e = 0u; e < p.experts; e++) {
    acc += gates[b * p.experts + e] * experts[e * size + i];
  }
  out[i] = acc;
}
