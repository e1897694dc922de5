// The module system. A Module maps any input structure to any output structure (a tensor, a
// record of named tensors...), lists its parts (children, own parameters, own buffers) under
// local names, and from those gets what every model has: dotted names (`fc1.weight`), freezing,
// train/eval, replacement of a part, its parameters gathered into one flat store (parameters.ts)
// and structural copies (replicas). A module shared by two parents is listed once, under the
// first path that reaches it, and so is one set of parameters.
import { noGrad } from './graph.js';
import { ParameterStore, type Parameter } from './parameters.js';
import { Tensor } from './tensor.js';

/** A module of any signature (what containers hold). */
export type AnyModule = Module<any, any>;

export abstract class Module<In = Tensor, Out = Tensor> {
  training = true;
  /** The store this module last gathered its parameters into (see store()). */
  private gathered: ParameterStore | null = null;

  abstract forward(input: In): Out;

  /** Direct sub-modules by local name. */
  children(): [string, AnyModule][] {
    return [];
  }

  /** This module's own parameters by local name. */
  ownParameters(): [string, Parameter][] {
    return [];
  }

  /** This module's own non-trained state tensors by local name (BatchNorm's running averages). */
  ownBuffers(): [string, Tensor][] {
    return [];
  }

  /** Visits this module and every sub-module once, depth first, parents before children, with its dotted prefix. */
  private visit(prefix: string, seen: Set<AnyModule>, fn: (prefix: string, m: AnyModule) => void): void {
    if (seen.has(this)) return;
    seen.add(this);
    fn(prefix, this);
    for (const [name, child] of this.children()) child.visit(`${prefix}${name}.`, seen, fn);
  }

  /** Every parameter under this module by dotted name, each once (a shared one under its first name), in layout order. */
  parameters(prefix = ''): Map<string, Parameter> {
    return this.collect(prefix, (m) => m.ownParameters());
  }

  /** Every buffer (non-trained state such as running averages) under this module, by dotted name, each once. */
  buffers(prefix = ''): Map<string, Tensor> {
    return this.collect(prefix, (m) => m.ownBuffers());
  }

  /** What `own` lists of every module below, by dotted name; a tensor reached twice, under its first name. */
  private collect<T extends Tensor>(prefix: string, own: (m: AnyModule) => [string, T][]): Map<string, T> {
    const out = new Map<string, T>();
    const seen = new Set<T>();
    this.visit(prefix, new Set(), (path, m) => {
      for (const [name, t] of own(m)) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.set(path + name, t);
      }
    });
    return out;
  }

  /** Every sub-module by dotted name, depth first, in order. */
  modules(prefix = ''): Map<string, AnyModule> {
    const out = new Map<string, AnyModule>();
    this.visit(prefix, new Set(), (path, m) => {
      if (m !== this) out.set(path.slice(0, -1), m);
    });
    return out;
  }

  /** The sub-module with this dotted name. */
  get(name: string): AnyModule {
    const m = this.modules().get(name);
    if (!m) throw new Error(`${this.constructor.name}.get: no layer named "${name}" (layers: ${[...this.modules().keys()].join(', ') || 'none'})`);
    return m;
  }

  /** Parameters whose name is `name` or lies under the layer `name`; throws when none does. */
  select(name: string, op = 'select'): Parameter[] {
    const all = this.parameters();
    const found = [...all].filter(([n]) => n === name || n.startsWith(name + '.')).map(([, p]) => p);
    if (found.length === 0) {
      throw new Error(`${op}: no layer or parameter named "${name}" (layers: ${[...this.modules().keys()].join(', ') || 'none'}; parameters: ${[...all.keys()].join(', ')})`);
    }
    return found;
  }

  /** Freezes the named layers or parameters (all when none is named). */
  freeze(...names: string[]): this {
    for (const p of names.length ? names.flatMap((n) => this.select(n, 'freeze')) : this.parameters().values()) p.freeze();
    return this;
  }

  unfreeze(...names: string[]): this {
    for (const p of names.length ? names.flatMap((n) => this.select(n, 'unfreeze')) : this.parameters().values()) p.unfreeze();
    return this;
  }

  /** Parameters that are not frozen. */
  trainableParameters(): Map<string, Parameter> {
    return new Map([...this.parameters()].filter(([, p]) => !p.frozen));
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters().values()) p.zeroGrad();
  }

  train(on = true): this {
    this.training = on;
    for (const [, c] of this.children()) c.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Forward without recording the graph (inference). */
  predict(input: In): Out {
    return noGrad(() => this.forward(input));
  }

  // ---------------------------------------------------------------- flat parameters

  /**
   * The flat store holding this module's parameters in its parameter order: the one they are in
   * when they make up exactly one of its rows (a model, or one replica of it), else a new one
   * they are gathered into (values, gradients and masks copied; then they move). Containers
   * gather when built and when a layer is replaced; parameters this module's previous store
   * held and the new one does not are marked `orphaned` (in no model any more).
   */
  store(): ParameterStore {
    const named = this.parameters();
    const params = [...named.values()];
    if (params.length === 0) throw new Error(`${this.constructor.name}: the model has no parameters, so no parameter store`);
    const current = params[0]!.store;
    if (current.rowOf(params) >= 0) return current;
    const store = ParameterStore.gather(params, [...named.keys()], this.constructor.name);
    const previous = this.gathered;
    if (previous) for (const p of previous.members.flat()) if (p.store === previous && !p.disposed) p.orphaned = true;
    this.gathered = store;
    return store;
  }

  /** The row of this module's parameters in store(). */
  private place(): { store: ParameterStore; row: number } {
    const store = this.store();
    return { store, row: store.rowOf([...this.parameters().values()]) };
  }

  /** All weights as one flat [P] tensor (a view of the store: writing it writes the parameters). */
  flatWeights(): Tensor {
    const { store, row } = this.place();
    return store.rowView(store.weights, row, `${this.constructor.name}.weights`);
  }

  /** All gradients as one flat [P] tensor, zeros where a parameter has none this step. */
  flatGradients(): Tensor {
    const { store, row } = this.place();
    return store.flatGrads(row);
  }

  /** Overwrites every weight from a flat [P] tensor laid out as flatWeights(). */
  setFlatWeights(values: Tensor): void {
    const target = this.flatWeights();
    try {
      if (values.size !== target.size) throw new Error(`setFlatWeights: ${values.name} has ${values.size} elements, the model's flat weights ${target.size}`);
      values.engine.copy(values, target);
    } finally {
      target.dispose();
    }
  }

  // ---------------------------------------------------------------- structure

  /**
   * Puts `module` in place of the sub-module `name` (dotted names reach into children) and
   * returns the old one, which the caller may dispose. A model whose parameters were gathered
   * lays them out again at once.
   */
  replace(name: string, module: AnyModule): AnyModule {
    const dot = name.lastIndexOf('.');
    const parent: AnyModule = dot < 0 ? this : this.get(name.slice(0, dot));
    const local = name.slice(dot + 1);
    const old = parent.children().find(([n]) => n === local)?.[1];
    if (!old) throw new Error(`${this.constructor.name}.replace: no layer named "${name}" (layers: ${[...this.modules().keys()].join(', ') || 'none'})`);
    const holder = parent as unknown as Record<string | symbol, unknown>;
    let found = false;
    for (const key of Reflect.ownKeys(holder)) {
      const value = holder[key];
      const next = substituted(value, old, module);
      if (next !== value) {
        holder[key] = next;
        found = true;
      }
    }
    if (!found || parent.children().find(([n]) => n === local)?.[1] !== module) {
      throw new Error(`${this.constructor.name}.replace: ${parent.constructor.name} keeps its layer "${local}" where replace cannot reach it`);
    }
    if (this.gathered) this.store();
    return old;
  }

  /**
   * A structural copy of this module: sub-modules copied (a shared one once), parameters and
   * buffers replaced by `substitutes` (keyed by the originals), everything else shared.
   */
  copyWith(substitutes: Map<Tensor, Tensor>): this {
    return copyValue(this, new Map<object, object>(substitutes)) as this;
  }

  dispose(): void {
    for (const p of this.parameters().values()) p.dispose();
    for (const t of this.buffers().values()) t.dispose();
  }
}

/** `value` with `old` replaced by `next` wherever it sits in arrays, Maps and plain objects; the same object where nothing changed. */
function substituted(value: unknown, old: AnyModule, next: AnyModule): unknown {
  if (value === old) return next;
  if (Array.isArray(value)) {
    const items = value.map((v) => substituted(v, old, next));
    return items.some((v, i) => v !== value[i]) ? items : value;
  }
  if (value instanceof Map) {
    const entries = [...value].map(([k, v]) => [k, substituted(v, old, next)] as const);
    return entries.some(([k, v]) => v !== value.get(k)) ? new Map(entries) : value;
  }
  if (isPlainObject(value)) {
    const entries = Object.entries(value).map(([k, v]) => [k, substituted(v, old, next)] as const);
    return entries.some(([k, v]) => v !== value[k]) ? Object.fromEntries(entries) : value;
  }
  return value;
}

function copyValue(value: unknown, done: Map<object, object>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const known = done.get(value);
  if (known) return known;
  if (value instanceof Module) {
    const copy = Object.create(Object.getPrototypeOf(value)) as Record<string | symbol, unknown>;
    done.set(value, copy);
    const source = value as unknown as Record<string | symbol, unknown>;
    for (const key of Reflect.ownKeys(source)) copy[key] = key === 'gathered' ? null : copyValue(source[key], done);
    return copy;
  }
  if (value instanceof Tensor) {
    throw new Error(`copy of a module: tensor ${value.name} is neither one of its parameters nor one of its buffers, so it is not known whether the copy may share it`);
  }
  if (Array.isArray(value)) return value.map((v) => copyValue(v, done));
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, copyValue(v, done)]));
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyValue(v, done)]));
  return value; // engines, options and other objects are shared
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
}
