// Parameters and the flat store that holds them. A model's parameters live in one flat f32
// buffer, one row of P elements laid out in the model's parameter order (each parameter at a
// multiple of 64 elements, the 256-byte storage-binding alignment, so that it can be bound on
// its own; the gaps are zero). Gradients and element masks live in buffers of the same layout,
// so whole-model arithmetic (deltas, averages, norms) is arithmetic on flat tensors. A store
// may hold K rows: K replicas of one model, [K, P].
//
// Each Parameter is a view into its store: an object with a stable identity (what optimizers
// key their state by), whatever container lists it and under whichever name. A new parameter
// has a store of its own; a model gathers its parameters into one store when it is built or
// its tree changes (module.ts), moving them (values, gradients, masks) without changing them.
import type { Engine } from './engine.js';
import { shapeSize, shapeString, Tensor, type Shape } from './tensor.js';

/** Elements per alignment unit: 256 bytes, the storage-binding offset alignment. */
export const ALIGNMENT = 64;

export function aligned(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}

export interface Slot {
  readonly name: string;
  readonly shape: Shape;
  readonly size: number;
  /** First element within a row. */
  readonly offset: number;
}

/** A trainable tensor: a view into a ParameterStore. It can be frozen whole, or in part with an element mask (1 = trainable). */
export class Parameter extends Tensor {
  frozen = false;
  /** Set when the model that held it rebuilt its store without it (a layer replaced): it is in no model now. */
  orphaned = false;
  private home: ParameterStore;
  private homeRow: number;
  private homeSlot: number;
  /** The gradient region holds this step's gradient (set by backward, cleared by zeroGrad). */
  private present = false;
  /** The gradient region may hold non-zero values (zeroed lazily, when the flat gradients are read). */
  private dirty = false;
  private masked = false;
  private gradCache: Tensor | null = null;
  private maskCache: Tensor | null = null;

  /** @internal Made by ParameterStore only. */
  constructor(store: ParameterStore, row: number, slot: number) {
    const s = store.slots[slot]!;
    super(store.engine, s.shape, store.weights.storage, s.name, store.rowOffset(row) + s.offset);
    store.weights.storage.refs++;
    this.home = store;
    this.homeRow = row;
    this.homeSlot = slot;
  }

  get store(): ParameterStore {
    return this.home;
  }

  get row(): number {
    return this.homeRow;
  }

  get slot(): number {
    return this.homeSlot;
  }

  /** This parameter's first element in its store's flat buffers. */
  get flatOffset(): number {
    return this.home.rowOffset(this.homeRow) + this.home.slots[this.homeSlot]!.offset;
  }

  get trainable(): boolean {
    return !this.frozen;
  }

  /** This step's gradient (a view of the model's flat gradient buffer), or null when it has none. */
  get grad(): Tensor | null {
    return this.present ? this.gradView() : null;
  }

  /** The element mask (a view of the model's flat mask buffer), or null when unmasked. */
  get mask(): Tensor | null {
    if (!this.masked) return null;
    if (!this.maskCache || this.maskCache.disposed) this.maskCache = this.home.view(this.home.masks(), this, 'mask');
    return this.maskCache;
  }

  get hasGradient(): boolean {
    return this.present;
  }

  /** The gradient region, whether or not it holds a gradient now (backward writes it). */
  gradView(): Tensor {
    if (!this.gradCache || this.gradCache.disposed) this.gradCache = this.home.view(this.home.grads(), this, 'grad');
    return this.gradCache;
  }

  /** Marks the gradient region as holding this step's gradient (after backward wrote it). */
  markGradient(): void {
    this.present = true;
    this.dirty = true;
  }

  /** Drops this step's gradient. The region is zeroed only when someone reads the flat gradients. */
  zeroGrad(): void {
    this.present = false;
  }

  /** @internal Whether the region must be zeroed before the flat gradients are read. */
  get staleGradient(): boolean {
    return this.dirty && !this.present;
  }

  /** @internal The region was zeroed. */
  markClean(): void {
    this.dirty = false;
  }

  /** Frozen whole: backward computes no gradient for it (no kernel runs), optimizers skip it. */
  freeze(): void {
    this.frozen = true;
    this.present = false;
  }

  unfreeze(): void {
    this.frozen = false;
  }

  /**
   * Frozen in part: elements where the mask is 0 get a zero gradient and optimizers leave them,
   * and their optimizer state, exactly as they are. null removes the mask.
   */
  setMask(mask: ArrayLike<number> | null): void {
    if (mask && mask.length !== this.size) throw new Error(`setMask: ${mask.length} values for parameter ${this.name} ${shapeString(this.shape)}`);
    this.masked = mask !== null;
    if (mask) this.engine.write(this.mask!, mask instanceof Float32Array ? mask : Float32Array.from(mask));
  }

  /** @internal Its mask was copied into its store's mask buffer. */
  markMasked(): void {
    this.masked = true;
  }

  /** @internal Moves this parameter to `row`, `slot` of `store`, whose buffers already hold its values, gradient and mask. */
  moveTo(store: ParameterStore, row: number, slot: number): void {
    const old = this.home;
    this.relocate(store.weights.storage, store.rowOffset(row) + store.slots[slot]!.offset);
    this.gradCache?.dispose();
    this.maskCache?.dispose();
    this.gradCache = null;
    this.maskCache = null;
    this.home = store;
    this.homeRow = row;
    this.homeSlot = slot;
    this.orphaned = false;
    this.dirty = this.present;
    old.leave();
  }

  override dispose(): void {
    if (this.disposed) return;
    this.gradCache?.dispose();
    this.maskCache?.dispose();
    this.gradCache = null;
    this.maskCache = null;
    this.present = false;
    super.dispose();
    this.home.leave();
  }
}

let nextStoreId = 1;

/**
 * Flat f32 buffers for the parameters of one model ([P]) or of K replicas of it ([K, P]):
 * weights, and, made on first use, gradients and element masks of the same layout.
 */
export class ParameterStore {
  readonly id = nextStoreId++;
  readonly size: number;
  readonly weights: Tensor;
  /** members[row][slot]: the Parameter objects, one per slot and row. */
  readonly members: Parameter[][] = [];
  private gradBuffer: Tensor | null = null;
  private maskBuffer: Tensor | null = null;
  /** Parameters that still live here; the buffers are released when none does. */
  private homed = 0;

  private constructor(
    readonly engine: Engine,
    readonly slots: readonly Slot[],
    readonly rows: number,
    label: string,
  ) {
    const last = slots.at(-1);
    this.size = last ? last.offset + aligned(last.size) : 0;
    // Zeros: the gaps between parameters stay zero, so flat sums and norms see only parameters.
    this.weights = engine.keep(engine.zeros([rows * this.size], `${label}.weights`));
  }

  /** A parameter in a store of its own. */
  static single(engine: Engine, data: Float32Array, shape: Shape, name: string): Parameter {
    const store = new ParameterStore(engine, layout([{ name, shape }]), 1, name);
    const p = store.place(0, 0);
    store.members.push([p]);
    engine.write(p, data);
    return p;
  }

  /**
   * A new store holding `params` (of one model, named `names`), in that order: their values,
   * gradients and masks are copied into it and the parameters move to it.
   */
  static gather(params: readonly Parameter[], names: readonly string[], label: string): ParameterStore {
    const engine = params[0]?.engine;
    if (!engine) throw new Error(`${label}: a model without parameters has no parameter store`);
    const store = new ParameterStore(engine, layout(params.map((p, i) => ({ name: names[i]!, shape: p.shape }))), 1, label);
    params.forEach((p, i) => {
      store.copyInto(store.weights, 0, i, p);
      if (p.hasGradient) store.copyInto(store.grads(), 0, i, p.grad!);
      if (p.mask) store.copyInto(store.masks(), 0, i, p.mask);
    });
    params.forEach((p, i) => {
      p.moveTo(store, 0, i);
      p.name = names[i]!;
      store.homed++;
    });
    store.members.push([...params]);
    return store;
  }

  /** A store of `count` rows, each a copy of `row` of `source` (values, frozen flags and masks), with new Parameter objects. */
  static replicate(source: ParameterStore, row: number, count: number, label: string): ParameterStore {
    const template = source.members[row];
    if (!template) throw new Error(`${label}: the store has no row ${row}`);
    const store = new ParameterStore(source.engine, source.slots, count, label);
    const from = source.engine.view(source.weights, [source.size], `${label}.source`, source.rowOffset(row));
    for (let r = 0; r < count; r++) {
      const to = store.rowView(store.weights, r);
      store.engine.copy(from, to);
      to.dispose();
      store.members.push(
        template.map((p, slot) => {
          const q = store.place(r, slot);
          q.frozen = p.frozen;
          if (p.mask) {
            store.copyInto(store.masks(), r, slot, p.mask);
            q.markMasked();
          }
          return q;
        }),
      );
    }
    from.dispose();
    return store;
  }

  private place(row: number, slot: number): Parameter {
    const p = new Parameter(this, row, slot);
    p.kept = true;
    this.homed++;
    return p;
  }

  /** Elements before row `row`. */
  rowOffset(row: number): number {
    return row * this.size;
  }

  /** The row of `params` here when they are exactly that row's parameters, in order; else -1. */
  rowOf(params: readonly Parameter[]): number {
    if (params.length !== this.slots.length) return -1;
    return this.members.findIndex((members) => members.every((p, i) => p === params[i] && p.store === this));
  }

  /** The flat gradients, zeros until a backward writes them (made on first use). */
  grads(): Tensor {
    this.gradBuffer ??= this.engine.keep(this.engine.zeros([this.rows * this.size], `${this.weights.name.replace(/\.weights$/, '')}.grads`));
    return this.gradBuffer;
  }

  /** The flat element masks (made on first use; only masked parameters' regions are meaningful). */
  masks(): Tensor {
    this.maskBuffer ??= this.engine.keep(this.engine.full([this.rows * this.size], 1, `${this.weights.name.replace(/\.weights$/, '')}.masks`));
    return this.maskBuffer;
  }

  /** Row `row` of one of this store's flat buffers, as a [P] view. */
  rowView(buffer: Tensor, row: number, name = `${buffer.name}[${row}]`): Tensor {
    return this.engine.view(buffer, [this.size], name, this.rowOffset(row));
  }

  /** p's region of one of this store's flat buffers, as a view of p's shape. */
  view(buffer: Tensor, p: Parameter, what: string): Tensor {
    return this.engine.keep(this.engine.view(buffer, p.shape, `${p.name}.${what}`, p.flatOffset));
  }

  /**
   * Row `row` of the flat gradients with the regions of parameters that have no gradient this
   * step zeroed: what whole-model gradient arithmetic reads.
   */
  flatGrads(row: number): Tensor {
    const grads = this.grads();
    for (const p of this.members[row] ?? []) {
      if (!p.staleGradient) continue;
      const region = p.gradView();
      this.engine.dispatch('fill', { bindings: { out: region }, uniforms: { n: region.size, value: 0 }, threads: region.size });
      p.markClean();
    }
    return this.rowView(grads, row);
  }

  private copyInto(buffer: Tensor, row: number, slot: number, from: Tensor): void {
    const s = this.slots[slot]!;
    const to = this.engine.view(buffer, s.shape, `${buffer.name}[${s.name}]`, this.rowOffset(row) + s.offset);
    this.engine.copy(from, to);
    to.dispose();
  }

  /** A parameter left (moved to another store, or disposed); the buffers go when none is left. */
  leave(): void {
    if (--this.homed > 0) return;
    this.weights.dispose();
    this.gradBuffer?.dispose();
    this.maskBuffer?.dispose();
    this.gradBuffer = null;
    this.maskBuffer = null;
  }

  /** Whether parameters still live here. */
  get live(): boolean {
    return this.homed > 0;
  }
}

/** Slots in order, each at a multiple of ALIGNMENT elements. */
function layout(entries: { name: string; shape: Shape }[]): Slot[] {
  let offset = 0;
  return entries.map(({ name, shape }) => {
    const size = shapeSize(shape);
    const slot = { name, shape: [...shape], size, offset };
    offset += aligned(size);
    return slot;
  });
}
