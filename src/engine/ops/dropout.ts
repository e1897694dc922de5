// Inverted dropout with a seeded per-element hash: the backward reapplies the same mask to dy
// by running the same kernel with the same seed.
import { record } from '../graph.js';
import type { Tensor } from '../tensor.js';
import { alive } from './check.js';

export function dropout(x: Tensor, rate: number, seed = x.engine.nextSeed()): Tensor {
  alive('dropout', x);
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate ${rate} must be in [0, 1)`);
  const apply = (input: Tensor, name: string) => {
    const out = input.engine.empty(input.shape, name);
    input.engine.dispatch('dropout', { bindings: { x: input, out }, uniforms: { n: input.size, seed, rate, scale: 1 / (1 - rate) }, threads: input.size });
    return out;
  };
  return record(apply(x, 'dropout'), 'dropout', [x], [(dy) => apply(dy, `d(${x.name})`)]);
}
