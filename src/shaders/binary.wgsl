// out = a (op) b for tensors of one shape (no implicit broadcasting). OP picks the operation.
override WG: u32 = 256;
override OP: u32 = 0; // 0 add, 1 sub, 2 mul

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  let x = a[i];
  let y = b[i];
  switch OP {
    case 0u: { out[i] = x + y; }
    case 1u: { out[i] = x - y; }
    default: { out[i] = x * y; }
  }
}
