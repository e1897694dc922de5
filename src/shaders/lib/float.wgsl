// IEEE special values tested by bit pattern: compilers may assume finite math and fold v != v
// or a NaN operand of a comparison away, and min, max and clamp of a NaN are
// implementation-defined (on x86 the result is whichever operand comes second).

fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn is_finite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// max(a, b) that returns a NaN operand (a's when both are), as IEEE 754-2019 maximum and JS Math.max.
fn max_nan(a: f32, b: f32) -> f32 {
  if (is_nan(a)) { return a; }
  if (is_nan(b)) { return b; }
  return max(a, b);
}

// A quiet NaN, made at run time: a NaN constant expression is a shader-creation error.
var<private> quiet_nan_bits: u32 = 0x7fc00000u;

fn quiet_nan() -> f32 {
  return bitcast<f32>(quiet_nan_bits);
}
