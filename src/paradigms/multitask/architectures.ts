// Soft-sharing trunks for multi-task learning, as ordinary modules: each gives a record of one
// representation per task, which MultiHead passes to the head of that name. Both are named,
// frozen, saved and replicated like any module.
//   CrossStitch (Misra et al. 2016): a column of stages per task, and after every stage a
//     learnable T x T matrix that mixes the columns' activations.
//   MMoE (Ma et al. 2018): E experts on the same input; per task a softmax gate over the experts
//     and their gated mixture.
import type { Engine } from '../../engine/engine.js';
import { Dense } from '../../engine/layers.js';
import { Module, type AnyModule } from '../../engine/module.js';
import { concat, inContext, matmul, mixture, reshape, slice, softmax } from '../../engine/ops/index.js';
import type { Parameter } from '../../engine/parameters.js';
import { Sequential } from '../../engine/containers.js';
import { shapeString, type Tensor } from '../../engine/tensor.js';

/** Throws unless there are `least` or more task names, each usable as a layer name and used once, none `reserved`. */
function checkTasks(what: string, tasks: readonly string[], least: number, reserved: (name: string) => boolean): void {
  if (tasks.length < least) throw new Error(`${what}: ${tasks.length} tasks given ([${tasks.join(', ')}]); at least ${least} are needed`);
  const seen = new Set<string>();
  for (const t of tasks) {
    if (!t || t.includes('.') || reserved(t)) throw new Error(`${what}: task name "${t}" must be non-empty, contain no dot and not be a layer name of ${what}`);
    if (seen.has(t)) throw new Error(`${what}: task name "${t}" is used twice`);
    seen.add(t);
  }
}

/** Throws unless every tensor has the shape of the first (the mixed representations). */
function checkSameShapes(what: string, names: readonly string[], ts: readonly Tensor[]): void {
  const first = ts[0]!.shape;
  if (ts.some((t) => t.shape.length !== first.length || t.shape.some((d, i) => d !== first[i]))) {
    throw new Error(`${what}: the outputs to mix differ in shape (${names.map((n, i) => `${n} ${shapeString(ts[i]!.shape)}`).join(', ')}); they must be equal`);
  }
}

/** Stacks T same-shape tensors [B, F] into [T, B * F] (one copy kernel). */
function stackRows(ts: readonly Tensor[]): Tensor {
  return concat(ts.map((t) => reshape(t, [1, t.size])), 0);
}

/**
 * A cross-stitch unit: z~_t = sum_s alpha[t, s] z_s over the T tasks' activations, alpha a
 * learnable T x T matrix, initialised "balanced" as the paper: 0.9 on the diagonal, 0.1 / (T - 1)
 * elsewhere (each row sums to 1). One matmul of alpha with the stacked activations [T, B * F].
 */
export class CrossStitchUnit extends Module<Tensor[], Tensor[]> {
  readonly alpha: Parameter;

  constructor(
    engine: Engine,
    readonly tasks: number,
  ) {
    super();
    const init = new Float32Array(tasks * tasks).fill(0.1 / (tasks - 1));
    for (let t = 0; t < tasks; t++) init[t * tasks + t] = 0.9;
    this.alpha = engine.parameter(init, [tasks, tasks], 'alpha');
  }

  override ownParameters(): [string, Parameter][] {
    return [['alpha', this.alpha]];
  }

  forward(zs: Tensor[]): Tensor[] {
    if (zs.length !== this.tasks) throw new Error(`CrossStitchUnit: ${zs.length} activations given for ${this.tasks} tasks`);
    const shape = zs[0]!.shape;
    const stacked = stackRows(zs);
    // alpha first would put the product in the engine's context, out of reach of a training loop's scopes.
    const mixed = matmul(inContext(stacked.engine, this.alpha), stacked);
    return zs.map((_, t) => reshape(slice(mixed, 0, t, 1), shape));
  }
}

export interface CrossStitchOptions {
  /** Task names, at least two: the keys of the output (and the head names of a MultiHead over it). */
  tasks: string[];
  /**
   * The stages of one task's column, in order (say Dense + ReLU blocks); called once per task.
   * Every column has the same number of stages, and at each stage the columns' outputs have the
   * same shape (they are mixed).
   */
  column: (task: string) => Module[];
}

/**
 * Cross-stitch networks (Misra et al. 2016): a column of stages per task, all on the same input,
 * with a cross-stitch unit after every stage mixing the tasks' activations. forward(x) gives
 * { [task]: its column's last, mixed activation }. Layers: `<task>.<stage>` (stages numbered from
 * 0) and `stitch<stage>` (its `alpha`), so `freeze('stitch0')` fixes a unit.
 */
export class CrossStitch extends Module<Tensor, Record<string, Tensor>> {
  readonly tasks: readonly string[];
  private readonly parts: [string, AnyModule][];

  constructor(engine: Engine, options: CrossStitchOptions) {
    super();
    const tasks = [...options.tasks];
    checkTasks('CrossStitch', tasks, 2, (t) => /^stitch\d+$/.test(t));
    const columns = tasks.map((t) => options.column(t));
    const stages = columns[0]!.length;
    if (stages === 0 || columns.some((c) => c.length !== stages)) {
      throw new Error(`CrossStitch: the columns have ${columns.map((c, i) => `${tasks[i]}: ${c.length}`).join(', ')} stages; they need the same number, at least one`);
    }
    this.tasks = tasks;
    this.parts = [
      ...tasks.map((t, i): [string, AnyModule] => [t, new Sequential(columns[i]!.map((m, s): [string, Module] => [String(s), m]))]),
      ...Array.from({ length: stages }, (_, s): [string, AnyModule] => [`stitch${s}`, new CrossStitchUnit(engine, tasks.length)]),
    ];
    this.store(); // one flat buffer, as the containers gather theirs
  }

  override children(): [string, AnyModule][] {
    return this.parts;
  }

  forward(x: Tensor): Record<string, Tensor> {
    const T = this.tasks.length;
    const columns = this.parts.slice(0, T).map(([, c]) => (c as Sequential).children());
    const stitches = this.parts.slice(T).map(([, u]) => u as CrossStitchUnit);
    let zs = this.tasks.map(() => x);
    stitches.forEach((unit, s) => {
      const out = zs.map((z, t) => (columns[t]![s]![1] as Module).forward(z));
      checkSameShapes(`CrossStitch stage ${s}`, this.tasks, out);
      zs = unit.forward(out);
    });
    return Object.fromEntries(this.tasks.map((t, i) => [t, zs[i]!]));
  }
}

export interface MMoEOptions {
  /** Task names: the keys of the output (and the head names of a MultiHead over it). */
  tasks: string[];
  /** Number of experts E (at least 1). */
  experts: number;
  /** Features of the input [B, inputFeatures] (the gates are Dense(inputFeatures, E)). */
  inputFeatures: number;
  /** Expert `index`: a module [B, inputFeatures] -> [B, F], the same F for every expert. */
  expert: (index: number) => Module;
  /** Seed of the gates' initial weights (default: the engine's sequence). */
  seed?: number;
}

/**
 * Multi-gate mixture of experts (Ma et al. 2018): E experts on the same input, and per task a gate
 * softmax(Dense(x)) over the experts [B, E]; task t's representation is
 * mixture(experts' outputs [E, B, F], gate_t). Layers: `expert<i>` and `gate_<task>`.
 */
export class MMoE extends Module<Tensor, Record<string, Tensor>> {
  readonly tasks: readonly string[];
  private readonly parts: [string, AnyModule][];

  constructor(engine: Engine, options: MMoEOptions) {
    super();
    const tasks = [...options.tasks];
    const E = options.experts;
    checkTasks('MMoE', tasks, 1, () => false);
    if (!Number.isInteger(E) || E < 1) throw new Error(`MMoE: experts ${E} must be a positive integer`);
    const seed = options.seed;
    this.tasks = tasks;
    this.parts = [
      ...Array.from({ length: E }, (_, i): [string, AnyModule] => [`expert${i}`, options.expert(i)]),
      // Dense uses seed and seed + 1 (weight, bias): two per gate.
      ...tasks.map((t, i): [string, AnyModule] => [`gate_${t}`, new Dense(engine, options.inputFeatures, E, seed === undefined ? {} : { seed: seed + 2 * i })]),
    ];
    this.store(); // one flat buffer, as the containers gather theirs
  }

  override children(): [string, AnyModule][] {
    return this.parts;
  }

  forward(x: Tensor): Record<string, Tensor> {
    const E = this.parts.length - this.tasks.length;
    const outs = this.parts.slice(0, E).map(([, m]) => (m as Module).forward(x));
    checkSameShapes('MMoE experts', this.parts.slice(0, E).map(([n]) => n), outs);
    if (outs[0]!.rank !== 2) throw new Error(`MMoE: expert0 gives ${outs[0]!.name} ${shapeString(outs[0]!.shape)}; experts must give [batch, features]`);
    const [B, F] = outs[0]!.shape as [number, number];
    const stacked = reshape(stackRows(outs), [E, B, F]);
    return Object.fromEntries(this.tasks.map((t, i) => [t, mixture(stacked, softmax((this.parts[E + i]![1] as Module).forward(x)))]));
  }
}
