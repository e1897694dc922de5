// out = x * keep / (1 - rate), keep drawn from a hash of (seed, index): a dropped NaN or infinity
// gives NaN, as PyTorch's x * mask / (1 - p). The backward is this same kernel applied to dy with
// the same seed, so no mask is stored.
override WG: u32 = 256;

struct Params { n: u32, seed: u32, rate: f32, scale: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// PCG hash (Jarzynski & Olano 2020): a good 32-bit mix for per-element random numbers.
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let u = f32(pcg(i ^ pcg(p.seed)) >> 8u) / 16777216.0; // 24 random bits in [0, 1)
  out[i] = x[i] * select(0.0, p.scale, u >= p.rate);
}
