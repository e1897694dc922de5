// out[o, l, i] = scale * x[o, i]: repeats x along a middle axis of length len (the backward of reduce).
override WG: u32 = 256;

struct Params { n: u32, len: u32, inner: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let o = i / (p.len * p.inner);
  out[i] = p.scale * x[o * p.inner + i % p.inner];
}
