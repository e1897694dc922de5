// One time step of a recurrent layer (src/engine/ops/recurrent.ts), for every batch row at once:
// the recurrent product h_{t-1} W_hh^T + b_hh, the gates and the state update in one dispatch,
// an invocation per (b, j) of the hidden state. gates_x [B, T, G*H] holds x W_ih^T + b_ih for
// every step (one matmul before the loop); h_{t-1} is read from the previous step's row of out
// [B, T, H] (h0 at step 0), so nothing is copied between steps. CELL picks the cell, gate blocks
// in PyTorch's order:
//   LSTM (G = 4: i, f, g, o)  c = f c_prev + i g, h = o tanh(c)
//   CIFG (G = 3: f, g, o)     the same with i = 1 - f (coupled input and forget gate)
//   GRU  (G = 3: r, z, n)     n = tanh(x_n + r (W_hn h + b_hn)), h = (1 - z) n + z h_prev
// Kept for the backward (recurrent_backward.wgsl), per (b, t): the gate activations in `saved`
// [B, T, G*H] (the G blocks above) and in `cells` [B, T, H] c (LSTM, CIFG) or W_hn h + b_hn (GRU).
#import "lib/recurrent_cell.wgsl"

override WG: u32 = 256;
override BIAS: bool = true;

@group(0) @binding(0) var<storage, read> gates_x: array<f32>;
@group(0) @binding(1) var<storage, read> h0: array<f32>;
@group(0) @binding(2) var<storage, read> c0: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> cells: array<f32>;
@group(0) @binding(7) var<storage, read_write> saved: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

fn sigmoid(v: f32) -> f32 { return act_value(ACT_SIGMOID, v, 0.0); }
fn tanh_(v: f32) -> f32 { return act_value(ACT_TANH, v, 0.0); }

// h_{t-1}[b, k] and, for LSTM and CIFG, c_{t-1}[b, k].
fn previous_h(b: u32, k: u32) -> f32 {
  if (p.step == 0u) { return h0[b * p.hidden + k]; }
  return out[(b * p.steps + p.step - 1u) * p.hidden + k];
}

fn previous_c(b: u32, k: u32) -> f32 {
  if (p.step == 0u) { return c0[b * p.hidden + k]; }
  return cells[(b * p.steps + p.step - 1u) * p.hidden + k];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  let H = p.hidden;
  if (i >= p.batch * H) { return; }
  let b = i / H;
  let j = i % H;
  let G = gate_count();
  // a[g] = (h_{t-1} W_hh^T + b_hh)[b, g H + j]
  var a = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var k = 0u; k < H; k++) {
    let h = previous_h(b, k);
    for (var g = 0u; g < G; g++) { a[g] += h * weight[(g * H + j) * H + k]; }
  }
  if (BIAS) {
    for (var g = 0u; g < G; g++) { a[g] += bias[g * H + j]; }
  }
  let row = b * p.steps + p.step;
  let x = row * G * H + j;
  if (CELL == CELL_GRU) {
    let r = sigmoid(gates_x[x] + a[0]);
    let z = sigmoid(gates_x[x + H] + a[1]);
    let n = tanh_(gates_x[x + 2u * H] + r * a[2]);
    out[row * H + j] = (1.0 - z) * n + z * previous_h(b, j);
    cells[row * H + j] = a[2];
    saved[x] = r;
    saved[x + H] = z;
    saved[x + 2u * H] = n;
    return;
  }
  // LSTM and CIFG: the blocks after the input gate's (if any).
  let first = forget_block();
  let f = sigmoid(gates_x[x + first * H] + a[first]);
  let gg = tanh_(gates_x[x + (first + 1u) * H] + a[first + 1u]);
  let o = sigmoid(gates_x[x + (first + 2u) * H] + a[first + 2u]);
  let in_gate = select(1.0 - f, sigmoid(gates_x[x] + a[0]), CELL == CELL_LSTM);
  let c = f * previous_c(b, j) + in_gate * gg;
  cells[row * H + j] = c;
  out[row * H + j] = o * tanh_(c);
  if (CELL == CELL_LSTM) { saved[x] = in_gate; }
  saved[x + first * H] = f;
  saved[x + (first + 1u) * H] = gg;
  saved[x + (first + 2u) * H] = o;
}
