// The backward of one time step of recurrent.wgsl, run for t = T-1 down to 0, an invocation per
// (b, j): dh = dy[b, t, j] + the recurrent path (d gates_hh of step t+1) W_hh [., j] (a matmul
// between the dispatches, written into state's second block) + carry (GRU: the z h_prev path),
// then the gate gradients from the activations the forward kept. dgates [B, T, K*H] holds
// d(pre-activation) per gate block: LSTM (K = 4) i, f, g, o and CIFG (K = 3) f, g, o, the same on
// the input and the recurrent side; GRU (K = 4) r, z, n on the recurrent side (n: times r) and n
// on the input side last. dgates_hh [B, G*H] is this step's recurrent side again, as the next
// matmul's operand. state [2, B, H]: carry (zero before step T-1), which passes dc (LSTM, CIFG) or
// z dh (GRU) to step t-1 and holds it for the initial state at the end, then the recurrent path.
// `initial` is c0 (LSTM, CIFG) or h0 (GRU): the state at step -1 that the step-0 backward reads.
#import "lib/recurrent_cell.wgsl"

override WG: u32 = 256;

@group(0) @binding(0) var<storage, read> saved: array<f32>;
@group(0) @binding(1) var<storage, read> cells: array<f32>;
@group(0) @binding(2) var<storage, read> initial: array<f32>;
@group(0) @binding(3) var<storage, read> out: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgates: array<f32>;
@group(0) @binding(6) var<storage, read_write> dgates_hh: array<f32>;
@group(0) @binding(7) var<storage, read_write> state: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

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
  var dh = dy[row * H + j] + state[p.batch * H + i];
  let carry = state[i];
  let x = row * G * H + j;
  let d = row * K * H + j;
  let hh = b * G * H + j;
  // h_{t-1}, c_{t-1} (the initial state at step 0)
  var h_prev = initial[i];
  var c_prev = initial[i];
  if (p.step > 0u) {
    h_prev = out[(row - 1u) * H + j];
    c_prev = cells[(row - 1u) * H + j];
  }
  if (CELL == CELL_GRU) {
    dh += carry;
    let r = saved[x];
    let z = saved[x + H];
    let n = saved[x + 2u * H];
    let dn = dh * (1.0 - z) * act_derivative(ACT_TANH, n, n, 0.0);
    let dr = dn * cells[row * H + j] * act_derivative(ACT_SIGMOID, r, r, 0.0);
    let dz = dh * (h_prev - n) * act_derivative(ACT_SIGMOID, z, z, 0.0);
    dgates[d] = dr;
    dgates[d + H] = dz;
    dgates[d + 2u * H] = dn * r;
    dgates[d + 3u * H] = dn;
    dgates_hh[hh] = dr;
    dgates_hh[hh + H] = dz;
    dgates_hh[hh + 2u * H] = dn * r;
    state[i] = dh * z;
    return;
  }
  let first = forget_block();
  let f = saved[x + first * H];
  let gg = saved[x + (first + 1u) * H];
  let o = saved[x + (first + 2u) * H];
  let in_gate = select(1.0 - f, saved[x], CELL == CELL_LSTM);
  let tc = act_value(ACT_TANH, cells[row * H + j], 0.0);
  let dc = carry + dh * o * act_derivative(ACT_TANH, tc, tc, 0.0);
  let d_in = dc * gg;
  // CIFG: f also drives the input gate 1 - f.
  let df = dc * c_prev - select(0.0, d_in, CELL == CELL_CIFG);
  var grads = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  grads[0] = d_in * act_derivative(ACT_SIGMOID, in_gate, in_gate, 0.0); // LSTM's i (CIFG's f overwrites it)
  grads[first] = df * act_derivative(ACT_SIGMOID, f, f, 0.0);
  grads[first + 1u] = dc * in_gate * act_derivative(ACT_TANH, gg, gg, 0.0);
  grads[first + 2u] = dh * tc * act_derivative(ACT_SIGMOID, o, o, 0.0);
  for (var g = 0u; g < G; g++) {
    dgates[d + g * H] = grads[g];
    dgates_hh[hh + g * H] = grads[g];
  }
  state[i] = dc * f;
}
