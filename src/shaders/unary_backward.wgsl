// dx = dy * f'(x), with f's output y at hand where f' is cheaper from it (sigmoid, tanh, exp).
// OP numbers match unary.wgsl.
override WG: u32 = 256;
override OP: u32 = 0;

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const GELU_C: f32 = 0.7978845608028654;

fn derivative(v: f32, out: f32) -> f32 {
  switch OP {
    // relu'(0) = 0, as PyTorch and TF: a unit exactly at the kink passes no gradient.
    case 0u: { return select(0.0, 1.0, v > 0.0); }
    case 1u: { return select(p.alpha, 1.0, v > 0.0); }
    case 2u: {
      let u = GELU_C * (v + 0.044715 * v * v * v);
      let t = tanh(clamp(u, -15.0, 15.0));
      return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * v * v);
    }
    case 3u: { return out * (1.0 - out); }
    case 4u: { return 1.0 - out * out; }
    case 5u: { return 2.0 * v; }
    case 6u: { return p.alpha; }
    case 7u: { return out; }
    case 8u: { return 1.0 / v; }
    default: { return 0.0; }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  dx[i] = dy[i] * derivative(x[i], y[i]);
}
