// What recurrent.wgsl and recurrent_backward.wgsl share: the cell (the CELL override, numbered as
// RecurrentCell in src/engine/ops/recurrent.ts), the step's uniforms, and the gate-block layout.
#import "lib/activation.wgsl"

override CELL: u32 = 0u;

const CELL_LSTM: u32 = 0u;
const CELL_CIFG: u32 = 1u; // LSTM with the input gate coupled to the forget gate: i = 1 - f
const CELL_GRU: u32 = 2u;

// A step of a [B, T, H] recurrence: step t of batch row b is row b * steps + t.
struct Params { batch: u32, steps: u32, hidden: u32, step: u32 }

// Gate blocks of gates_x and W_hh: LSTM i, f, g, o; CIFG f, g, o; GRU r, z, n.
fn gate_count() -> u32 { return select(3u, 4u, CELL == CELL_LSTM); }

// LSTM and CIFG: the block of f (after i, if the cell has its own input gate).
fn forget_block() -> u32 { return select(0u, 1u, CELL == CELL_LSTM); }
