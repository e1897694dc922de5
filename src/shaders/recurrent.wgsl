// One time step of a recurrent layer (src/engine/ops/recurrent.ts), for every batch row at once:
// the gates and the state update in one dispatch, an invocation per (b, j) of the hidden state.
// gates_x [B, T, G*H] holds x W_ih^T + b_ih for every step (one matmul before the loop), gates_h
// [B, G*H] this step's h_{t-1} W_hh^T + b_hh (a matmul just before, reading h_{t-1} from
// `hidden`, the time-major copy of the hidden states this kernel writes next to out [B, T, H]).
// CELL picks the cell, gate blocks in PyTorch's order:
//   LSTM (G = 4: i, f, g, o)  c = f c_prev + i g, h = o tanh(c)
//   CIFG (G = 3: f, g, o)     the same with i = 1 - f (coupled input and forget gate)
//   GRU  (G = 3: r, z, n)     n = tanh(x_n + r (W_hn h + b_hn)), h = (1 - z) n + z h_prev
// Kept for the backward (recurrent_backward.wgsl), per (b, t): the gate activations in `saved`
// [B, T, G*H] (the G blocks above) and in `cells` [B, T, H] c (LSTM, CIFG) or W_hn h + b_hn (GRU).
#import "lib/recurrent_cell.wgsl"

override WG: u32 = 256;

@group(0) @binding(0) var<storage, read> gates_x: array<f32>;
@group(0) @binding(1) var<storage, read> gates_h: array<f32>;
// The state before step 0: c0 (LSTM, CIFG) or h0 (GRU).
@group(0) @binding(2) var<storage, read> initial: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(5) var<storage, read_write> cells: array<f32>;
@group(0) @binding(6) var<storage, read_write> saved: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

fn sigmoid(v: f32) -> f32 { return act_value(ACT_SIGMOID, v, 0.0); }
fn tanh_(v: f32) -> f32 { return act_value(ACT_TANH, v, 0.0); }

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  let H = p.hidden;
  if (i >= p.batch * H) { return; }
  let b = i / H;
  let j = i % H;
  let G = gate_count();
  let row = b * p.steps + p.step;
  let x = row * G * H + j;
  let hh = b * G * H + j;
  // h_{t-1} (GRU) or c_{t-1} (LSTM, CIFG) at (b, j): the previous step's row of out or cells.
  var previous = initial[i];
  if (p.step > 0u) { previous = select(cells[(row - 1u) * H + j], out[(row - 1u) * H + j], CELL == CELL_GRU); }
  if (CELL == CELL_GRU) {
    let r = sigmoid(gates_x[x] + gates_h[hh]);
    let z = sigmoid(gates_x[x + H] + gates_h[hh + H]);
    let n = tanh_(gates_x[x + 2u * H] + r * gates_h[hh + 2u * H]);
    let h = (1.0 - z) * n + z * previous;
    out[row * H + j] = h;
    hidden[(p.step * p.batch + b) * H + j] = h;
    cells[row * H + j] = gates_h[hh + 2u * H];
    saved[x] = r;
    saved[x + H] = z;
    saved[x + 2u * H] = n;
    return;
  }
  // LSTM and CIFG: the blocks after the input gate's (if any).
  let first = forget_block();
  let f = sigmoid(gates_x[x + first * H] + gates_h[hh + first * H]);
  let gg = tanh_(gates_x[x + (first + 1u) * H] + gates_h[hh + (first + 1u) * H]);
  let o = sigmoid(gates_x[x + (first + 2u) * H] + gates_h[hh + (first + 2u) * H]);
  let in_gate = select(1.0 - f, sigmoid(gates_x[x] + gates_h[hh]), CELL == CELL_LSTM);
  let c = f * previous + in_gate * gg;
  cells[row * H + j] = c;
  let h = o * tanh_(c);
  out[row * H + j] = h;
  hidden[(p.step * p.batch + b) * H + j] = h;
  if (CELL == CELL_LSTM) { saved[x] = in_gate; }
  saved[x + first * H] = f;
  saved[x + (first + 1u) * H] = gg;
  saved[x + (first + 2u) * H] = o;
}
