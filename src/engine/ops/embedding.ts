// Embedding lookup: rows of a table gathered by integer indices held in an f32 tensor (the
// engine's tensors are all f32). Kernels: embedding (gather, one invocation per output element)
// and embedding_backward (for each table row and chunk of 16 columns, the sum of dy over the
// positions that picked the row: no atomics, O(vocab * dim / 16 * positions) index loads, see the shader).
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, output } from './check.js';

/** Largest vocabulary whose indices are all exact in f32 (2^24). */
export const MAX_EMBEDDING_VOCAB = 1 << 24;

/**
 * table [vocab, dim] gathered by indices [...]: out [..., dim], out[..., :] = table[index, :].
 * Indices must hold integers in [0, vocab); they are not checked here (that would need a
 * readback). A position with any other value (out of range, fractional, NaN, infinite) gets a
 * row of NaN, so that the loss becomes NaN and a finite check (`fit`'s `checkFinite`) stops the
 * training, and adds nothing to the table's gradient. `Embedding.indices` makes a checked index
 * tensor. No gradient flows into the indices.
 */
export function embedding(indices: Tensor, table: Tensor): Tensor {
  const op = 'embedding';
  alive(op, indices, table);
  if (table.rank !== 2) throw new Error(`${op}: table ${table.name} has shape ${shapeString(table.shape)}, expected [vocab, dim]`);
  const [vocab, dim] = table.shape as [number, number];
  if (vocab > MAX_EMBEDDING_VOCAB) throw new Error(`${op}: table ${table.name} ${shapeString(table.shape)} has more rows than f32 indices can address exactly (${MAX_EMBEDDING_VOCAB})`);
  // The output belongs to the context of the indices (the data), not of the table (the model).
  const engine = indices.engine;
  const positions = indices.size;
  const out = engine.empty([...indices.shape, dim], op);
  const n = positions * dim;
  if (n > 0) engine.dispatch('embedding', { bindings: { indices, table, out }, uniforms: { n, dim, vocab }, threads: n });
  return record(out, op, [indices, table], [
    null,
    (dy, into) => {
      const dtable = output(op, engine, table.shape, `d(${table.name})`, into);
      if (table.size > 0) {
        engine.dispatch('embedding_backward', { bindings: { indices, dy, dtable }, uniforms: { vocab, dim, positions }, threads: vocab * dim });
      }
      return dtable;
    },
  ]);
}

/** Throws unless every value is an integer in [0, vocab): the contract of `embedding`'s indices. */
export function checkIndices(op: string, values: ArrayLike<number>, vocab: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= vocab) {
      throw new Error(`${op}: index ${v} at position ${i} is not an integer in [0, ${vocab})`);
    }
  }
}
