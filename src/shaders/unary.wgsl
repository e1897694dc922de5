// out = f(x) elementwise. OP picks f from the table in src/engine/ops/elementwise.ts;
// alpha is f's parameter where it has one (leaky_relu slope, scale factor, clip norm).
override WG: u32 = 256;
override OP: u32 = 0;

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const GELU_C: f32 = 0.7978845608028654; // sqrt(2 / pi)

// tanh through exp overflows to inf/inf = NaN on some drivers for large |v|; tanh(15) is 1 in f32.
fn safe_tanh(v: f32) -> f32 {
  return tanh(clamp(v, -15.0, 15.0));
}

fn apply(v: f32) -> f32 {
  switch OP {
    case 0u: { return max(v, 0.0); }                                             // relu
    case 1u: { return select(p.alpha * v, v, v > 0.0); }                        // leaky_relu
    case 2u: { return 0.5 * v * (1.0 + safe_tanh(GELU_C * (v + 0.044715 * v * v * v))); } // gelu (tanh form)
    case 3u: { return 1.0 / (1.0 + exp(-v)); }                                  // sigmoid
    case 4u: { return safe_tanh(v); }                                           // tanh
    case 5u: { return v * v; }                                                  // square
    case 6u: { return p.alpha * v; }                                            // scale
    case 7u: { return exp(v); }                                                 // exp
    case 8u: { return log(v); }                                                 // log
    default: { return min(1.0, p.alpha / (sqrt(v) + 1e-6)); }                   // clip_factor: v is a squared norm
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  if (i >= p.n) { return; }
  out[i] = apply(x[i]);
}
