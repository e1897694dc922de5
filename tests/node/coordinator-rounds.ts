// The state and log of round r as the coordinator-store tests commit them: every value follows
// from r, so a store that loads round r can be checked against what round r committed.
import type { CoordinatorState, RoundLogEntry } from '../../server/federated/store.js';
import type { PayloadLayout } from '../../src/index.js';

/** A layout of `rows` x 1000 weights and 1000 biases (at a multiple of 64, as trainableLayout places them). */
export function layoutOf(rows: number): PayloadLayout {
  const w = rows * 1000;
  const offset = Math.ceil(w / 64) * 64;
  return {
    entries: [
      { name: 'fc.weight', shape: [rows, 1000], size: w, offset: 0 },
      { name: 'fc.bias', shape: [1000], size: 1000, offset },
    ],
    length: offset + 1024,
    values: w + 1000,
  };
}

/** Integers (exact in f32) that differ from round to round and from element to element. */
function pattern(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = ((seed * 7919 + i * 31) % 65521) - 32760;
  return out;
}

export function roundState(round: number, layout: PayloadLayout): CoordinatorState {
  return {
    round,
    modelVersion: round + 100,
    strategy: 'FedAdam',
    layout,
    weights: pattern(layout.length, round),
    optimizerState: new Map([
      ['m', pattern(layout.length, round + 1000)],
      ['v', pattern(layout.length, round + 2000)],
    ]),
    strategyState: JSON.stringify({ orders: [1.5, 2, 32], rdp: [round * 0.01, round * 0.02, round * 0.5] }),
  };
}

export function roundLog(round: number): RoundLogEntry {
  return {
    round,
    sampled: ['c0', 'c1', 'c2', 'c3'],
    reported: ['c0', 'c1', 'c3'],
    dropped: ['c2'],
    rejected: [{ clientId: 'c3', reason: `round ${round}: norm 51.2 exceeds 10 x the median 0.9` }],
    bytesDown: round * 4_000_000,
    bytesUp: round * 3_000_000,
    seconds: round / 8,
  };
}
