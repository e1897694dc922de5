// The inverse of quantize8.wgsl: element i = lo + f32(c_i) * step of its block (scales[2b],
// scales[2b + 1]), c_i byte i % 4 of code word i / 4. A poisoned block (NaN scales) decodes to NaN.
// One invocation per code word (its four elements share a block: BLOCK is a multiple of 4).
override WG: u32 = 256;
override BLOCK: u32 = 1024;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let q = gid.x + gid.y * groups.x * WG;
  if (4u * q >= p.n) { return; }
  let b = 4u * q / BLOCK;
  let lo = scales[2u * b];
  let step = scales[2u * b + 1u];
  let word = codes[q];
  for (var j = 0u; j < 4u; j++) {
    let i = 4u * q + j;
    if (i >= p.n) { break; }
    out[i] = lo + f32((word >> (8u * j)) & 0xffu) * step;
  }
}
