// Replicas: K copies of one model's weights on one device, stored as one [K, P] block (a
// ParameterStore of K rows), each usable as a model of its own (a structural copy of the model
// whose parameters are views of its row, with its own buffers). An optimizer made over the
// replicas steps all K with one kernel per group; their average, or a weighted average, is one
// reduction kernel over the block; forward(x) runs all K on their own inputs with one kernel per
// layer (batched.ts). The source model keeps its own weights.
import { replicaForward } from './batched.js';
import type { Engine } from './engine.js';
import type { AnyModule } from './module.js';
import { weightedAverage } from './ops/flat.js';
import { concat, reshape } from './ops/shape.js';
import { ParameterStore, type Parameter } from './parameters.js';
import { shapeString, type Tensor } from './tensor.js';

export class Replicas<M extends AnyModule> {
  readonly store: ParameterStore;
  readonly models: readonly M[];
  private readonly engine: Engine;

  constructor(source: M, count: number) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`replicate: count ${count} must be a positive integer`);
    const named = source.parameters();
    const params = [...named.values()];
    const store = source.store();
    const row = store.rowOf(params);
    this.engine = store.engine;
    this.store = ParameterStore.replicate(store, row, count, `${source.constructor.name}.replicas`);
    const buffers = [...source.buffers().values()];
    this.models = this.store.members.map((members) => {
      const substitutes = new Map<Tensor, Tensor>();
      params.forEach((p, slot) => substitutes.set(p, members[slot]!));
      for (const b of buffers) {
        const copy = this.engine.keep(this.engine.empty(b.shape, b.name));
        this.engine.copy(b, copy);
        substitutes.set(b, copy);
      }
      return source.copyWith(substitutes);
    });
  }

  get count(): number {
    return this.models.length;
  }

  model(k: number): M {
    const m = this.models[k];
    if (!m) throw new Error(`Replicas: no replica ${k} (there are ${this.count})`);
    return m;
  }

  /** Parameters of every replica for one parameter of replica 0: [replica][...]. */
  rowsOf(p: Parameter): Parameter[] {
    return this.store.members.map((members) => members[p.slot]!);
  }

  /**
   * All replicas' forward in one kernel per layer: x [K, B, ...] (replica k's batch is x[k]) gives
   * [K, B, out], out[k] what replica k's model gives for x[k]. For a Sequential of Dense,
   * Activation, Flatten and Dropout layers (Dropout draws its mask per element of all K, and
   * follows replica 0's training mode); anything else throws. Its backward writes every
   * replica's weight gradients with one kernel per layer, into empty gradients (zeroGrad after
   * each step).
   */
  forward(x: Tensor): Tensor {
    if (x.rank < 2 || x.shape[0] !== this.count) {
      throw new Error(`Replicas.forward: input ${x.name} has shape ${shapeString(x.shape)}; expected [${this.count}, batch, ...] (one batch per replica)`);
    }
    return replicaForward(this.models[0]!, x, (p) => this.rowsOf(p));
  }

  /** The weights of all replicas as a [K, P] tensor (a view: writing it writes the replicas). */
  weights(): Tensor {
    return this.engine.view(this.store.weights, [this.count, this.store.size], `${this.store.weights.name}.block`);
  }

  /** The gradients of all replicas as a [K, P] tensor, zeros where a replica's parameter has none this step. */
  gradients(): Tensor {
    for (let k = 0; k < this.count; k++) this.store.flatGrads(k).dispose();
    return this.engine.view(this.store.grads(), [this.count, this.store.size], `${this.store.weights.name}.gradBlock`);
  }

  /** The mean of the replicas' weights, or their average weighted by `weights` (one per replica), as a flat [P] tensor. */
  average(weights?: readonly number[] | Tensor): Tensor {
    const block = this.weights();
    try {
      return weightedAverage(block, weights);
    } finally {
      block.dispose();
    }
  }

  /**
   * Writes the (weighted) average of the replicas into `target` (a model laid out as they are,
   * such as the one they were made from): weights and buffers (BatchNorm statistics).
   */
  averageInto(target: AnyModule, weights?: readonly number[] | Tensor): void {
    this.checkLayout('averageInto', target);
    const avg = this.average(weights);
    target.setFlatWeights(avg);
    avg.dispose();
    const targetBuffers = [...target.buffers().values()];
    const replicaBuffers = this.models.map((m) => [...m.buffers().values()]);
    targetBuffers.forEach((b, i) => {
      const rows = replicaBuffers.map((list) => reshape(list[i]!, [1, b.size]));
      const stacked = concat(rows, 0);
      const mean = weightedAverage(stacked, weights);
      this.engine.copy(mean, b);
      for (const t of [...rows, stacked, mean]) t.dispose();
    });
  }

  /** Sets every replica's weights and buffers to `source`'s (a model laid out as they are). */
  load(source: AnyModule): void {
    this.checkLayout('load', source);
    const from = source.flatWeights();
    for (let k = 0; k < this.count; k++) {
      const to = this.store.rowView(this.store.weights, k);
      this.engine.copy(from, to);
      to.dispose();
    }
    from.dispose();
    const buffers = [...source.buffers().values()];
    for (const m of this.models) [...m.buffers().values()].forEach((b, i) => this.engine.copy(buffers[i]!, b));
  }

  private checkLayout(op: string, other: AnyModule): void {
    const theirs = [...other.parameters()];
    const slots = this.store.slots;
    const mismatch = slots.findIndex((s, i) => !theirs[i] || theirs[i]![1].shape.join() !== s.shape.join());
    if (mismatch >= 0 || theirs.length !== slots.length) {
      const at = mismatch >= 0 ? mismatch : Math.min(theirs.length, slots.length);
      const mine = slots[at];
      const their = theirs[at];
      throw new Error(
        `Replicas.${op}: the model is not laid out as the replicas: parameter ${at} is ${their ? `${their[0]} ${shapeString(their[1].shape)}` : 'missing'} there and ${mine ? `${mine.name} ${shapeString(mine.shape)}` : 'missing'} here`,
      );
    }
    const theirBuffers = [...other.buffers().values()];
    const myBuffers = [...this.models[0]!.buffers().values()];
    if (theirBuffers.length !== myBuffers.length || theirBuffers.some((b, i) => b.size !== myBuffers[i]!.size)) {
      throw new Error(`Replicas.${op}: the model's buffers (${theirBuffers.map((b) => shapeString(b.shape)).join(', ')}) are not the replicas' (${myBuffers.map((b) => shapeString(b.shape)).join(', ')})`);
    }
  }

  /** Frees the replicas' weights, gradients and buffers. */
  dispose(): void {
    for (const m of this.models) m.dispose();
  }
}

/** K copies of `model` (weights, frozen flags, masks and buffers) in one [K, P] block; the model is not changed. */
export function replicate<M extends AnyModule>(model: M, count: number): Replicas<M> {
  return new Replicas(model, count);
}
