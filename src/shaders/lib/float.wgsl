// IEEE special values. NaN is tested by bit pattern: compilers may assume finite math and fold
// v != v or a comparison with a NaN operand away, and min, max and clamp of a NaN are
// implementation-defined (on x86 the result is whichever operand comes second).

fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn is_finite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// Made at run time from private variables: a non-finite constant expression is a shader-creation error.
var<private> quiet_nan_bits: u32 = 0x7fc00000u;
var<private> infinity_bits: u32 = 0x7f800000u;

fn quiet_nan() -> f32 {
  return bitcast<f32>(quiet_nan_bits);
}

fn infinity() -> f32 {
  return bitcast<f32>(infinity_bits);
}

// max(a, b) that returns a NaN operand (a's when both are), as IEEE 754-2019 maximum and JS Math.max.
fn max_nan(a: f32, b: f32) -> f32 {
  if (is_nan(a)) { return a; }
  if (is_nan(b)) { return b; }
  return max(a, b);
}

// exp and log with their IEEE special cases. WGSL specifies the builtins' accuracy for finite
// arguments only: SwiftShader's exp(NaN) is inf, its log(NaN) about 89, log(0) about -88 and
// log(-1) 0.
fn exp_ieee(v: f32) -> f32 {
  if (is_nan(v)) { return v; }
  return exp(v);
}

fn log_ieee(v: f32) -> f32 {
  if (is_nan(v) || v < 0.0) { return quiet_nan(); }
  if (v == 0.0) { return -infinity(); }
  if (!is_finite(v)) { return v; }
  return log(v);
}
