// Optimizers: one fused WGSL kernel per parameter group and step (sgd.wgsl, adam.wgsl) over the
// model's flat weights and gradients, where the parameters live (parameters.ts). An optimizer
// owns only its state, laid out like its parameters (each group's, one after another); several
// optimizers can share a model over disjoint parameters. Made over replicas, it steps all K of
// them in the same kernels. Groups carry their own learning rate and weight decay; an optional
// global-norm clip and a non-finite check read per-row gradient statistics computed on the GPU
// (grad_stats.wgsl), so a step needs no readback.
import type { Engine } from './engine.js';
import type { KernelName } from './kernels.js';
import { Module, type AnyModule } from './module.js';
import { aligned, Parameter, type ParameterStore } from './parameters.js';
import { Replicas } from './replicas.js';
import type { Schedule } from './schedule.js';
import type { Tensor } from './tensor.js';

export interface ParamGroup {
  params: Iterable<Parameter>;
  lr?: number;
  weightDecay?: number;
  name?: string;
}

export interface OptimizerOptions {
  lr: number;
  weightDecay?: number;
  /** Clip gradients so that their global L2 norm (over all updated parameters) is at most this. */
  clipNorm?: number;
  /** Factor on every group's rate as a function of the step number. */
  schedule?: Schedule;
  /**
   * What a step does when a gradient holds NaN or infinity, detected on the GPU by the kernel
   * that also computes the clipping norm: 'skip' leaves weights and state exactly as they were
   * (counted in `skippedSteps`), 'throw' also makes `check()` throw (the training loop calls it
   * at each loss readback). Unset: no check (the update applies whatever the gradients hold).
   */
  nonFinite?: 'skip' | 'throw';
}

/** What an optimizer can be made over: a model (it then follows the model's parameters as they change), replicas, parameters, or groups of parameters. */
export type OptimizerParams = AnyModule | Replicas<AnyModule> | Iterable<Parameter> | Map<string, Parameter> | ParamGroup[];

export interface Group {
  name: string;
  params: Parameter[];
  lr: number;
  weightDecay: number;
}

/** A group's state: its updated parameters one after another (each at a multiple of 64), `rows` rows. */
interface GroupState {
  offsets: Map<Parameter, number>;
  size: number;
  tensors: Tensor[];
}

/** The parameters of one store and row range updated this step. */
interface Part {
  store: ParameterStore;
  rowStart: number;
  params: Parameter[];
}

/** Invocations per workgroup of the update kernels. */
const OPTIMIZER_WG = 256;
/** Elements an optimizer invocation updates (CHUNK vec4s in lib/optimizer_step.wgsl). */
const OPTIMIZER_CHUNK = 16;

function checkNumber(op: string, what: string, v: number, ok: (v: number) => boolean, rule: string): void {
  if (typeof v !== 'number' || !ok(v)) throw new Error(`${op}: invalid ${what}: ${v} (${rule})`);
}

export abstract class Optimizer {
  readonly groups: Group[];
  /** Steps taken so far. */
  steps = 0;
  clipNorm: number | undefined;
  schedule: Schedule | undefined;
  readonly nonFinite: 'skip' | 'throw' | undefined;
  /** Steps left undone because a gradient was not finite (known once their check was read back). */
  skippedSteps = 0;
  /** Steps each parameter has been updated (Adam's bias correction counts per parameter, as torch). */
  readonly paramSteps = new Map<Parameter, number>();
  protected readonly engine: Engine;
  /** The model or replicas this optimizer follows (new parameters join group 0, removed ones leave). */
  private readonly source: AnyModule | Replicas<AnyModule> | null;
  /** Rows stepped at once: the replicas' count, or 1. */
  readonly rows: number;
  private readonly state = new Map<Group, GroupState>();
  private readonly tables = new Map<string, Tensor>();
  private stats: Tensor | null = null;
  private readonly checks: Promise<void>[] = [];
  private firstBadStep: number | null = null;

  /** `stateNames`: the state tensors kept per parameter, as stateOf() gives them (velocity; Adam's m and v). */
  constructor(params: OptimizerParams, options: OptimizerOptions, readonly stateNames: readonly string[]) {
    const op = this.constructor.name;
    validateCommon(op, options);
    this.source = params instanceof Module || params instanceof Replicas ? params : null;
    this.rows = params instanceof Replicas ? params.count : 1;
    const groups = toGroups(params);
    this.groups = groups.map((g, i) => {
      const group = { name: g.name ?? `group${i}`, params: [...g.params], lr: g.lr ?? options.lr, weightDecay: g.weightDecay ?? options.weightDecay ?? 0 };
      checkNumber(op, `learning rate of group ${group.name}`, group.lr, (v) => v >= 0 && Number.isFinite(v), 'must be a finite number >= 0');
      checkNumber(op, `weight decay of group ${group.name}`, group.weightDecay, (v) => v >= 0 && Number.isFinite(v), 'must be a finite number >= 0');
      return group;
    });
    const first = this.groups.find((g) => g.params.length)?.params[0];
    if (!first) throw new Error(`${op}: no parameters given`);
    const seen = new Set<Parameter>();
    for (const g of this.groups) {
      for (const p of g.params) {
        if (!(p instanceof Parameter)) throw new Error(`${op}: ${(p as { name?: string }).name ?? String(p)} in group ${g.name} is not a Parameter`);
        if (seen.has(p)) throw new Error(`${op}: parameter ${p.name} is in two groups`);
        if (p.disposed) throw new Error(`${op}: parameter ${p.name} was disposed`);
        seen.add(p);
      }
    }
    this.engine = first.engine;
    this.clipNorm = options.clipNorm;
    this.schedule = options.schedule;
    this.nonFinite = options.nonFinite;
  }

  /** The rate a group uses at the current step (its base rate times the schedule's factor). */
  lr(group = 0): number {
    const g = this.groups[group];
    if (!g) throw new Error(`optimizer: no group ${group} (has ${this.groups.length})`);
    return g.lr * (this.schedule ? this.schedule(this.steps) : 1);
  }

  /** Every parameter this optimizer updates. */
  parameters(): Parameter[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Applies one update to every unfrozen parameter that has a gradient: one kernel per group (and store). */
  step(): void {
    this.refresh();
    const active = this.groups.map((g) => g.params.filter((p) => p.hasGradient && !p.frozen));
    const all = active.flat();
    if (all.length > 0) {
      const parts = this.parts(all);
      for (const p of all) this.paramSteps.set(p, (this.paramSteps.get(p) ?? 0) + 1);
      const withStats = this.clipNorm !== undefined || this.nonFinite !== undefined;
      const stats = withStats ? this.gradientStats(parts) : this.engine.placeholder();
      this.groups.forEach((g, i) => {
        const params = active[i]!;
        if (params.length === 0) return;
        const state = this.stateFor(g, params);
        this.engine.withLabel(g.name, () => {
          for (const part of parts) {
            const mine = params.filter((p) => part.params.includes(p));
            if (mine.length) this.dispatchUpdate(g, i, state, part, mine, stats);
          }
        });
      });
      if (this.nonFinite) this.recordCheck(stats);
    }
    this.steps++;
  }

  /** Drops every parameter's gradient (of every replica). */
  zeroGrad(): void {
    for (const p of this.parameters()) for (const q of this.replicasOf(p)) q.zeroGrad();
  }

  /**
   * Waits for the non-finite checks of the steps taken so far; with nonFinite 'throw', throws
   * if any step was skipped, naming the first one.
   */
  async check(): Promise<void> {
    await Promise.all([...this.checks]);
    if (this.nonFinite === 'throw' && this.firstBadStep !== null) {
      throw new Error(
        `${this.constructor.name}: gradients held NaN or infinity at step ${this.firstBadStep} (${this.skippedSteps} step${this.skippedSteps === 1 ? '' : 's'} skipped so far; weights and optimizer state were left as they were)`,
      );
    }
  }

  /**
   * The optimizer state of a parameter (velocity, or Adam's two moments) as views, in replica
   * `row`; empty before its first update unless `create` (which makes the group's state).
   */
  stateOf(p: Parameter, row = 0, create = false): Tensor[] {
    const group = this.groups.find((g) => g.params.includes(p));
    if (!group) throw new Error(`${this.constructor.name}.stateOf: ${p.name} is not one of its parameters`);
    if (!Number.isInteger(row) || row < 0 || row >= this.rows) throw new Error(`${this.constructor.name}.stateOf: no row ${row} (it steps ${this.rows})`);
    if (!create && !this.paramSteps.has(p)) return [];
    const state = create ? this.stateFor(group, [p]) : this.state.get(group);
    const at = state?.offsets.get(p);
    if (!state || at === undefined) return [];
    return state.tensors.map((s, i) => this.engine.view(s, p.shape, `${p.name}.${this.stateNames[i]}`, row * state.size + at));
  }

  dispose(): void {
    for (const s of this.state.values()) for (const t of s.tensors) t.dispose();
    this.state.clear();
    for (const t of this.tables.values()) t.dispose();
    this.tables.clear();
    this.stats?.dispose();
    this.stats = null;
  }

  // ---------------------------------------------------------------- internals

  /** Every row's parameter for a group parameter (one, unless stepping replicas). */
  private replicasOf(p: Parameter): Parameter[] {
    return this.source instanceof Replicas ? this.source.rowsOf(p) : [p];
  }

  /**
   * Keeps the groups in step with the model (step() does this first): parameters disposed or
   * removed from their model leave (an optimizer made over a model) or are refused (one made
   * over parameters: it would leave the layers that replaced them untrained); new parameters of
   * the model join group 0.
   */
  refresh(): void {
    const gone = this.parameters().filter((p) => p.disposed || p.orphaned);
    if (!this.source || this.source instanceof Replicas) {
      const p = gone[0];
      if (p) {
        throw new Error(
          `${this.constructor.name}: parameter ${p.name} ${p.disposed ? 'was disposed' : 'is no longer in its model (its layer was replaced)'}; make a new optimizer for the model's new parameters, or make it over the model (new ${this.constructor.name}(model, ...)) to follow such changes`,
        );
      }
      return;
    }
    const current = new Set(this.source.parameters().values());
    const known = new Set(this.parameters());
    const added = [...current].filter((p) => !known.has(p));
    if (gone.length === 0 && added.length === 0 && [...known].every((p) => current.has(p))) return;
    for (const g of this.groups) {
      const kept = g.params.filter((p) => current.has(p) && !p.disposed);
      if (g === this.groups[0]) kept.push(...added);
      if (kept.length === g.params.length && kept.every((p, i) => p === g.params[i])) continue;
      for (const p of g.params) if (!kept.includes(p)) this.paramSteps.delete(p);
      g.params = kept;
      const state = this.state.get(g);
      if (state) this.layoutState(g, kept.filter((p) => state.offsets.has(p)));
    }
  }

  /**
   * The group's state, with a place for each of `include`: a parameter takes space from its first
   * update on (a frozen one none), its state carried over when the layout grows or shrinks.
   */
  private stateFor(g: Group, include: readonly Parameter[]): GroupState {
    const old = this.state.get(g);
    if (old && include.every((p) => old.offsets.has(p))) return old;
    return this.layoutState(g, g.params.filter((p) => old?.offsets.has(p) || include.includes(p)));
  }

  /** Lays the group's state out for `members` (in group order), carrying over what they had. */
  private layoutState(g: Group, members: Parameter[]): GroupState {
    const old = this.state.get(g);
    const offsets = new Map<Parameter, number>();
    let size = 0;
    for (const p of members) {
      offsets.set(p, size);
      size += aligned(p.size);
    }
    const e = this.engine;
    const tensors = this.stateNames.map((n) => e.keep(e.zeros([Math.max(1, this.rows * size)], `${this.constructor.name}.${g.name}.${n}`)));
    for (const p of members) {
      const from = old?.offsets.get(p);
      if (from === undefined) continue;
      tensors.forEach((t, i) => {
        for (let r = 0; r < this.rows; r++) {
          const src = e.view(old!.tensors[i]!, [p.size], 'state.from', r * old!.size + from);
          const dst = e.view(t, [p.size], 'state.to', r * size + offsets.get(p)!);
          e.copy(src, dst);
          src.dispose();
          dst.dispose();
        }
      });
    }
    if (old) for (const t of old.tensors) t.dispose();
    const state = { offsets, size, tensors };
    this.state.set(g, state);
    return state;
  }

  /** The parameters updated this step by store and row (replicas: all rows of their store at once). */
  private parts(params: Parameter[]): Part[] {
    const parts = new Map<string, Part>();
    const ids = new Map<ParameterStore, number>();
    for (const p of params) {
      if (this.source instanceof Replicas) {
        const rows = this.source.rowsOf(p);
        const missing = rows.findIndex((q) => q.hasGradient !== p.hasGradient || q.frozen !== p.frozen);
        if (missing >= 0) {
          throw new Error(`${this.constructor.name}: replica ${missing} of ${p.name} ${rows[missing]!.hasGradient ? 'has' : 'has no'} gradient or is ${rows[missing]!.frozen ? '' : 'not '}frozen, unlike replica 0; replicas stepped together must have gradients for the same parameters`);
        }
      }
      if (!ids.has(p.store)) ids.set(p.store, ids.size);
      const key = `${ids.get(p.store)}:${p.row}`;
      let part = parts.get(key);
      if (!part) {
        part = { store: p.store, rowStart: p.row, params: [] };
        parts.set(key, part);
      }
      part.params.push(p);
    }
    return [...parts.values()];
  }

  /** A kept segment-table tensor for `key`, rewritten with `table`. */
  private table(key: string, table: Uint32Array): Tensor {
    let t = this.tables.get(key);
    if (!t || t.size < table.length) {
      t?.dispose();
      t = this.engine.keep(this.engine.empty([Math.max(table.length, 8)], `${this.constructor.name}.segments.${key}`));
      this.tables.set(key, t);
    }
    // The kernel reads as many entries as its uniform says: a longer table from an earlier step is reused.
    const prefix = this.engine.view(t, [table.length], `${t.name}.used`);
    this.engine.write(prefix, new Float32Array(table.buffer));
    prefix.dispose();
    return t;
  }

  /** Per row: [sum of squares, non-finite count] of the gradients to be applied, summed over stores. */
  private gradientStats(parts: Part[]): Tensor {
    const e = this.engine;
    this.stats ??= e.keep(e.zeros([2 * this.rows], `${this.constructor.name}.stats`));
    const stats = this.stats;
    e.dispatch('fill', { bindings: { out: stats }, uniforms: { n: stats.size, value: 0 }, threads: stats.size });
    parts.forEach((part, i) => {
      const table = new Uint32Array(8 * part.params.length);
      part.params.forEach((p, s) => table.set([0, p.size, p.flatOffset - part.store.rowOffset(p.row), 0], 8 * s));
      e.dispatch('grad_stats', {
        bindings: { grad: part.store.grads(), segment: this.table(`stats${i}`, table), stats },
        uniforms: { row_size: part.store.size, row_start: part.rowStart, segments: part.params.length },
        workgroups: [this.rows],
      });
    });
    return stats;
  }

  private dispatchUpdate(g: Group, index: number, state: GroupState, part: Part, params: Parameter[], stats: Tensor): void {
    const rows = params.map((p) => [state.offsets.get(p)!, p] as const).sort((a, b) => a[0] - b[0]);
    const table = new Uint32Array(8 * rows.length);
    const extra = new Uint32Array(4);
    let masked = false;
    rows.forEach(([start, p], s) => {
      extra.fill(0);
      this.segmentValues(p, new Float32Array(extra.buffer));
      masked ||= p.mask !== null;
      table.set([start, start + p.size, p.flatOffset - part.store.rowOffset(p.row), p.mask ? 1 : 0], 8 * s);
      table.set(extra, 8 * s + 4);
    });
    const { kernel, bindings, uniforms, constants } = this.update(state.tensors, this.lr(index), g.weightDecay);
    // x (and y past the per-dimension limit) over the state, 16 elements an invocation; z over the rows stepped.
    const groups = Math.ceil(state.size / OPTIMIZER_CHUNK / OPTIMIZER_WG);
    const maxPerDim = this.engine.limits.maxComputeWorkgroupsPerDimension;
    this.engine.dispatch(kernel, {
      bindings: {
        ...bindings,
        param: part.store.weights,
        grad: part.store.grads(),
        mask: masked ? part.store.masks() : this.engine.placeholder(),
        stats,
        segment: this.table(`${index}:${part.store.id}:${part.rowStart}`, table),
      },
      uniforms: { ...uniforms, state_size: state.size, row_size: part.store.size, row_start: part.rowStart, segments: rows.length, max_norm: this.clipNorm ?? 0 },
      constants: { ...constants, CLIP: this.clipNorm !== undefined, SKIP_NONFINITE: this.nonFinite !== undefined, MASKED: masked, WG: OPTIMIZER_WG },
      workgroups: [Math.min(groups, maxPerDim), Math.ceil(groups / maxPerDim), this.rows],
    });
  }

  /** Reads the step's non-finite counts back without waiting; check() awaits them. */
  private recordCheck(stats: Tensor): void {
    const step = this.steps + 1;
    const reading: Promise<void> = stats.data().then((values) => {
      this.checks.splice(this.checks.indexOf(reading), 1);
      let bad = false;
      for (let r = 0; r < this.rows; r++) if (values[2 * r + 1]! > 0) bad = true;
      if (!bad) return;
      this.skippedSteps++;
      this.firstBadStep ??= step;
    });
    reading.catch(() => undefined); // reported by check()
    this.checks.push(reading);
  }

  /** Per-optimizer values of a parameter's segment entry (up to four f32s: Adam's bias corrections). */
  protected segmentValues(_p: Parameter, _into: Float32Array): void {}

  /** The group's update kernel and its own bindings, uniforms and constants. */
  protected abstract update(state: Tensor[], lr: number, weightDecay: number): { kernel: KernelName; bindings: Record<string, Tensor>; uniforms: Record<string, number>; constants: Record<string, number | boolean> };
}

function validateCommon(op: string, o: OptimizerOptions): void {
  checkNumber(op, 'learning rate', o.lr, (v) => v >= 0 && Number.isFinite(v), 'must be a finite number >= 0');
  if (o.weightDecay !== undefined) checkNumber(op, 'weight_decay value', o.weightDecay, (v) => v >= 0 && Number.isFinite(v), 'must be a finite number >= 0');
  if (o.clipNorm !== undefined) checkNumber(op, 'clipNorm', o.clipNorm, (v) => v > 0 && Number.isFinite(v), 'must be a finite number > 0');
  if (o.nonFinite !== undefined && o.nonFinite !== 'skip' && o.nonFinite !== 'throw') throw new Error(`${op}: invalid nonFinite: ${String(o.nonFinite)} (must be 'skip' or 'throw')`);
  if (o.schedule !== undefined && typeof o.schedule !== 'function') throw new Error(`${op}: schedule must be a function of the step number`);
}

export interface SGDOptions extends OptimizerOptions {
  momentum?: number;
  nesterov?: boolean;
}

/** SGD with optional momentum and Nesterov momentum, as torch.optim.SGD with dampening 0. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly nesterov: boolean;
  /** Bound as the velocity without momentum (never read or written then). */
  private unusedVelocity: Tensor | null = null;

  constructor(params: OptimizerParams, options: SGDOptions) {
    const momentum = options.momentum ?? 0;
    checkNumber('SGD', 'momentum value', momentum, (v) => v >= 0 && Number.isFinite(v), 'must be a finite number >= 0');
    if (options.nesterov && momentum <= 0) throw new Error('SGD: Nesterov momentum requires a momentum > 0 (and zero dampening)');
    super(params, options, momentum > 0 ? ['velocity'] : []);
    this.momentum = momentum;
    this.nesterov = options.nesterov ?? false;
  }

  protected update(state: Tensor[], lr: number, weightDecay: number) {
    return {
      kernel: 'sgd' as const,
      bindings: { velocity: state[0] ?? (this.unusedVelocity ??= this.engine.keep(this.engine.zeros([4], 'SGD.unusedVelocity'))) },
      uniforms: { lr, momentum: this.momentum, weight_decay: weightDecay },
      constants: { HAS_MOMENTUM: this.momentum > 0, NESTEROV: this.nesterov },
    };
  }

  override dispose(): void {
    super.dispose();
    this.unusedVelocity?.dispose();
    this.unusedVelocity = null;
  }
}

export interface AdamOptions extends OptimizerOptions {
  betas?: [number, number];
  eps?: number;
}

/** Adam (L2 weight decay added to the gradient), as torch.optim.Adam. */
export class Adam extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  protected readonly decoupled: boolean = false;

  constructor(params: OptimizerParams, options: AdamOptions) {
    const op = new.target.name;
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    const eps = options.eps ?? 1e-8;
    checkNumber(op, 'epsilon value', eps, (v) => v >= 0 && Number.isFinite(v), 'must be a finite number >= 0');
    checkNumber(op, 'beta parameter at index 0', beta1, (v) => v >= 0 && v < 1, 'must be in [0, 1)');
    checkNumber(op, 'beta parameter at index 1', beta2, (v) => v >= 0 && v < 1, 'must be in [0, 1)');
    super(params, options, ['m', 'v']);
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
  }

  protected override segmentValues(p: Parameter, into: Float32Array): void {
    const t = this.paramSteps.get(p)!;
    into[0] = 1 - this.beta1 ** t;
    into[1] = 1 - this.beta2 ** t;
  }

  protected update(state: Tensor[], lr: number, weightDecay: number) {
    return {
      kernel: 'adam' as const,
      bindings: { m1: state[0]!, m2: state[1]! },
      uniforms: { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weight_decay: weightDecay },
      constants: { DECOUPLED: this.decoupled },
    };
  }
}

/** AdamW: weight decay applied to the weights directly, as torch.optim.AdamW (default 0.01). */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;

  constructor(params: OptimizerParams, options: AdamOptions) {
    super(params, { ...options, weightDecay: options.weightDecay ?? 0.01 });
  }
}

function toGroups(params: OptimizerParams): ParamGroup[] {
  if (params instanceof Replicas) return [{ params: params.model(0).parameters().values() }];
  if (params instanceof Module) return [{ params: params.parameters().values() }];
  if (params instanceof Map) return [{ params: params.values() }];
  const list = [...(params as Iterable<Parameter | ParamGroup>)];
  if (list.length > 0 && list.every((x) => 'params' in x && !(x instanceof Parameter))) return list as ParamGroup[];
  return [{ params: list as Parameter[] }];
}
