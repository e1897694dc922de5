// Every unary op once: its number, its value and its derivative. The numbers are the OP override
// of unary.wgsl and unary_backward.wgsl and the ACT override of the matmul and conv2d epilogues;
// src/engine/ops/activation.ts reads them from this file's `const ACT_<NAME>: u32 = <n>u;` lines.
// alpha is an op's parameter where it has one. NaN propagates: a NaN input gives a NaN value and
// a NaN derivative (it lies on neither side of a kink).
#import "lib/float.wgsl"

const ACT_NONE: u32 = 0u; // the identity: an epilogue without activation
const ACT_RELU: u32 = 1u;
const ACT_LEAKY_RELU: u32 = 2u; // slope alpha
const ACT_GELU: u32 = 3u; // tanh form
const ACT_SIGMOID: u32 = 4u;
const ACT_TANH: u32 = 5u;
const ACT_SQUARE: u32 = 6u;
const ACT_SCALE: u32 = 7u; // factor alpha
const ACT_EXP: u32 = 8u;
const ACT_LOG: u32 = 9u;
const ACT_CLIP_FACTOR: u32 = 10u; // min(1, alpha / sqrt(x)): the global-norm clipping factor from a squared norm

const GELU_C: f32 = 0.7978845608028654; // sqrt(2 / pi)
const GELU_A: f32 = 0.044715;

// tanh, exactly +-1 past |v| = 15 (where f32 tanh rounds to +-1 anyway): tanh through exp
// overflows to inf/inf = NaN on some drivers for large |v|.
fn safe_tanh(v: f32) -> f32 {
  if (is_nan(v)) { return v; }
  if (abs(v) > 15.0) { return sign(v); }
  return tanh(v);
}

fn act_value(op: u32, x: f32, alpha: f32) -> f32 {
  switch op {
    case ACT_RELU: { return select(0.0, x, x > 0.0 || is_nan(x)); }
    case ACT_LEAKY_RELU: { return select(alpha * x, x, x > 0.0); }
    case ACT_GELU: { return 0.5 * x * (1.0 + safe_tanh(GELU_C * (x + GELU_A * x * x * x))); }
    case ACT_SIGMOID: { return 1.0 / (1.0 + exp_ieee(-x)); }
    case ACT_TANH: { return safe_tanh(x); }
    case ACT_SQUARE: { return x * x; }
    case ACT_SCALE: { return alpha * x; }
    case ACT_EXP: { return exp_ieee(x); }
    case ACT_LOG: { return log_ieee(x); }
    case ACT_CLIP_FACTOR: {
      let f = alpha / (sqrt(x) + 1e-6);
      return select(min(1.0, f), f, is_nan(f));
    }
    default: { return x; } // ACT_NONE
  }
}

// f'(x) from the input x and the output y = f(x). The ops an epilogue applies (relu, leaky_relu
// with a positive slope, sigmoid, tanh) need only y: the caller may pass y for x, since there
// x > 0 exactly where y > 0. relu'(0) = 0, as PyTorch and TF: a unit at the kink passes nothing.
fn act_derivative(op: u32, x: f32, y: f32, alpha: f32) -> f32 {
  switch op {
    case ACT_RELU: { return select(select(0.0, 1.0, x > 0.0), x, is_nan(x)); }
    case ACT_LEAKY_RELU: { return select(select(alpha, 1.0, x > 0.0), x, is_nan(x)); }
    case ACT_GELU: {
      let t = safe_tanh(GELU_C * (x + GELU_A * x * x * x));
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x);
    }
    case ACT_SIGMOID: { return y * (1.0 - y); }
    case ACT_TANH: { return 1.0 - y * y; }
    case ACT_SQUARE: { return 2.0 * x; }
    case ACT_SCALE: { return alpha; }
    case ACT_EXP: { return y; }
    case ACT_LOG: { return 1.0 / x; }
    default: { return 1.0; } // ACT_NONE; clip_factor is not differentiable (no gradient is recorded)
  }
}
