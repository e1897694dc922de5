// The backward of one time step of recurrent.wgsl, run for t = T-1 down to 0, an invocation per
// (b, j): dh = dy[b, t, j] + (d gates_hh of step t+1) W_hh [., j] (the recurrent path, read from
// the previous dispatch's rows of dgates) + carry (GRU: the z h_prev path), then the gate
// gradients from the activations the forward kept. dgates [B, T, K*H] holds d(pre-activation)
// per gate block: LSTM (K = 4) i, f, g, o and CIFG (K = 3) f, g, o, the same for the input and the
// recurrent side; GRU (K = 4) r, z, n on the recurrent side (n: times r) and n on the input side
// last. carry [B, H] (zero before step T-1) passes dc (LSTM, CIFG) or z dh (GRU) to step t-1 and
// holds it for step -1 (the initial state's gradient) at the end.
#import "lib/recurrent_cell.wgsl"

override WG: u32 = 256;

@group(0) @binding(0) var<storage, read> saved: array<f32>;
@group(0) @binding(1) var<storage, read> cells: array<f32>;
@group(0) @binding(2) var<storage, read> h0: array<f32>;
@group(0) @binding(3) var<storage, read> c0: array<f32>;
@group(0) @binding(4) var<storage, read> out: array<f32>;
@group(0) @binding(5) var<storage, read> weight: array<f32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(8) var<storage, read_write> carry: array<f32>;
@group(0) @binding(9) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let i = gid.x + gid.y * groups.x * WG;
  let H = p.hidden;
  if (i >= p.batch * H) { return; }
  let b = i / H;
  let j = i % H;
  let G = gate_count();
  let K = select(G, 4u, CELL == CELL_GRU);
  let row = b * p.steps + p.step;
  var dh = dy[row * H + j];
  if (p.step + 1u < p.steps) {
    let next = (row + 1u) * K * H;
    for (var g = 0u; g < G; g++) {
      for (var k = 0u; k < H; k++) { dh += dgates[next + g * H + k] * weight[(g * H + k) * H + j]; }
    }
  }
  let x = row * G * H + j;
  let d = row * K * H + j;
  // h_{t-1}, c_{t-1} (the initial state at step 0)
  var h_prev = h0[i];
  var c_prev = c0[i];
  if (p.step > 0u) {
    h_prev = out[(row - 1u) * H + j];
    c_prev = cells[(row - 1u) * H + j];
  }
  if (CELL == CELL_GRU) {
    dh += carry[i];
    let r = saved[x];
    let z = saved[x + H];
    let n = saved[x + 2u * H];
    let dn = dh * (1.0 - z) * act_derivative(ACT_TANH, n, n, 0.0);
    dgates[d] = dn * cells[row * H + j] * act_derivative(ACT_SIGMOID, r, r, 0.0);
    dgates[d + H] = dh * (h_prev - n) * act_derivative(ACT_SIGMOID, z, z, 0.0);
    dgates[d + 2u * H] = dn * r;
    dgates[d + 3u * H] = dn;
    carry[i] = dh * z;
    return;
  }
  let first = forget_block();
  let f = saved[x + first * H];
  let gg = saved[x + (first + 1u) * H];
  let o = saved[x + (first + 2u) * H];
  let in_gate = select(1.0 - f, saved[x], CELL == CELL_LSTM);
  let tc = act_value(ACT_TANH, cells[row * H + j], 0.0);
  let dc = carry[i] + dh * o * act_derivative(ACT_TANH, tc, tc, 0.0);
  let d_in = dc * gg;
  // CIFG: f also drives the input gate 1 - f.
  let df = dc * c_prev - select(0.0, d_in, CELL == CELL_CIFG);
  if (CELL == CELL_LSTM) { dgates[d] = d_in * act_derivative(ACT_SIGMOID, in_gate, in_gate, 0.0); }
  dgates[d + first * H] = df * act_derivative(ACT_SIGMOID, f, f, 0.0);
  dgates[d + (first + 1u) * H] = dc * in_gate * act_derivative(ACT_TANH, gg, gg, 0.0);
  dgates[d + (first + 2u) * H] = dh * tc * act_derivative(ACT_SIGMOID, o, o, 0.0);
  carry[i] = dc * f;
}
