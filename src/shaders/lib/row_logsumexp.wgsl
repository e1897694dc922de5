// A row's log-sum-exp, lse = m + log(sum_j exp(x_j - m)) with m = max_j x_j, so no exp
// overflows; NaN when any value is NaN. The importing shader declares
// `logits: array<f32>` (the rows, cols values each from `base`) and `override WG: u32`.
#import "lib/workgroup_reduce.wgsl"

// By one invocation.
fn row_lse(base: u32, cols: u32) -> f32 {
  var m = -3.402823e38;
  for (var j = 0u; j < cols; j++) { m = max_nan(m, logits[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < cols; j++) { s += exp_ieee(logits[base + j] - m); }
  return m + log_ieee(s);
}

// By the WG invocations of a workgroup, striding over the columns; called in uniform control
// flow (it holds barriers); `valid` false (a workgroup past the last row) reads nothing.
fn row_lse_cooperative(base: u32, cols: u32, valid: bool, lid: u32) -> f32 {
  var m = -3.402823e38;
  if (valid) {
    for (var j = lid; j < cols; j += WG) { m = max_nan(m, logits[base + j]); }
  }
  m = reduce_max(m, lid);
  var s = 0.0;
  if (valid) {
    for (var j = lid; j < cols; j += WG) { s += exp_ieee(logits[base + j] - m); }
  }
  return m + log_ieee(reduce_sum(s, lid));
}
