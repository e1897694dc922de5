// Optimizers: one fused WGSL kernel per parameter group and step (sgd.wgsl, adam.wgsl), over the
// group's parameters packed into one buffer. Groups carry their own learning rate and weight
// decay; an optional global-norm clip is computed on the GPU and read by the update kernels, so
// a step needs no readback.
import type { Engine } from './engine.js';
import { noGrad } from './graph.js';
import { add, square, sum, unary } from './ops/index.js';
import type { Schedule } from './schedule.js';
import type { Parameter, Tensor } from './tensor.js';

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
}

interface Group {
  name: string;
  params: Parameter[];
  lr: number;
  weightDecay: number;
}

type Params = Iterable<Parameter> | Map<string, Parameter> | ParamGroup[];

/**
 * A group's parameters packed into one buffer (each at a multiple of 64 elements, the binding
 * alignment), with their gradients, optimizer state and update mask packed the same way, so that
 * one kernel updates the whole group. The parameters are moved onto the packed buffer.
 */
export interface Packed {
  flat: Tensor;
  grads: Tensor;
  state: Tensor[];
  /** 1 where this step updates, 0 elsewhere (frozen, masked, no gradient, gaps). */
  mask: Tensor;
  maskKey: string;
  offsets: Map<Parameter, number>;
  /** Adam's per-parameter bias corrections. */
  segments: Tensor | null;
}

function disposePacked(p: Packed): void {
  for (const t of [p.flat, p.grads, p.mask, ...p.state]) t.dispose();
  p.segments?.dispose();
}

export abstract class Optimizer {
  readonly groups: Group[];
  /** Steps taken so far. */
  steps = 0;
  clipNorm: number | undefined;
  schedule: Schedule | undefined;
  protected readonly engine: Engine;
  /** Steps each parameter has been updated (Adam's bias correction counts per parameter, as torch). */
  protected readonly paramSteps = new Map<Parameter, number>();
  private readonly packed = new Map<Group, Packed>();
  // Bound where a shader's binding is unused (no momentum) and as the clip factor 1.
  protected readonly ones: Tensor;
  protected readonly scratch: Tensor;

  constructor(params: Params, options: OptimizerOptions) {
    const groups = toGroups(params);
    this.groups = groups.map((g, i) => ({
      name: g.name ?? `group${i}`,
      params: [...g.params],
      lr: g.lr ?? options.lr,
      weightDecay: g.weightDecay ?? options.weightDecay ?? 0,
    }));
    const first = this.groups.find((g) => g.params.length)?.params[0];
    if (!first) throw new Error('optimizer: no parameters given');
    const seen = new Set<Parameter>();
    for (const g of this.groups) {
      for (const p of g.params) {
        if (seen.has(p)) throw new Error(`optimizer: parameter ${p.name} is in two groups`);
        seen.add(p);
      }
    }
    this.engine = first.engine;
    this.clipNorm = options.clipNorm;
    this.schedule = options.schedule;
    this.ones = this.engine.keep(this.engine.full([4], 1, 'optimizer.ones'));
    this.scratch = this.engine.keep(this.engine.zeros([4], 'optimizer.scratch'));
  }

  /** The rate a group uses at the current step (its base rate times the schedule's factor). */
  lr(group = 0): number {
    const g = this.groups[group];
    if (!g) throw new Error(`optimizer: no group ${group} (has ${this.groups.length})`);
    return g.lr * (this.schedule ? this.schedule(this.steps) : 1);
  }

  /** Applies one update to every unfrozen parameter that has a gradient: one kernel per group. */
  step(): void {
    const active = this.groups.map((g) => g.params.filter((p) => p.grad && !p.frozen && !p.disposed));
    noGrad(() => {
      const clip = this.clipNorm === undefined ? this.ones : this.clipFactor(active.flat(), this.clipNorm);
      this.groups.forEach((g, i) => {
        const params = active[i]!;
        if (params.length === 0) return;
        const packed = this.pack(g, params);
        for (const p of params) this.paramSteps.set(p, (this.paramSteps.get(p) ?? 0) + 1);
        this.engine.withLabel(g.name, () => {
          for (const p of params) this.region(packed, packed.grads, p, (grad) => this.engine.copy(p.grad!, grad));
          this.updateMask(packed, params);
          this.update(packed, params, this.lr(i), g.weightDecay, clip);
        });
      });
      if (clip !== this.ones) clip.dispose();
    });
    this.steps++;
  }

  /** Drops every parameter's gradient (its buffer returns to the pool). */
  zeroGrad(): void {
    for (const g of this.groups) {
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  }

  /** The optimizer state of a parameter (velocity, or Adam's two moments) as views; empty before its first update. */
  stateOf(p: Parameter): Tensor[] {
    const group = this.groups.find((g) => g.params.includes(p));
    const packed = group && this.packed.get(group);
    if (!packed || !packed.offsets.has(p)) return [];
    const at = packed.offsets.get(p)!;
    return packed.state.map((s) => this.engine.view(s, p.shape, `${p.name}.state`, at));
  }

  /**
   * The group's packed buffers, holding every parameter it has updated so far (frozen ones never
   * take space); repacked, state carried over, when a parameter is updated for the first time.
   */
  private pack(g: Group, params: Parameter[]): Packed {
    const old = this.packed.get(g);
    if (old) {
      for (const p of old.offsets.keys()) {
        if (!p.disposed && p.storage !== old.flat.storage) {
          throw new Error(`optimizer: parameter ${p.name} was packed by another optimizer since; use one optimizer per parameter at a time`);
        }
      }
      if (params.every((p) => old.offsets.has(p))) return old;
    }
    const members = g.params.filter((p) => !p.disposed && (old?.offsets.has(p) || params.includes(p)));
    const e = this.engine;
    const offsets = new Map<Parameter, number>();
    let total = 0;
    for (const p of members) {
      offsets.set(p, total);
      total += Math.ceil(p.size / 64) * 64;
    }
    const name = `optimizer.${g.name}`;
    const packed: Packed = {
      flat: e.keep(e.zeros([total], `${name}.params`)),
      grads: e.keep(e.zeros([total], `${name}.grads`)),
      state: this.createState(total, name).map((t) => e.keep(t)),
      mask: e.keep(e.zeros([total], `${name}.mask`)),
      maskKey: '',
      offsets,
      segments: null,
    };
    for (const p of members) {
      this.region(packed, packed.flat, p, (r) => e.copy(p, r));
      if (old?.offsets.has(p)) {
        packed.state.forEach((s, i) => this.region(old, old.state[i]!, p, (from) => this.region(packed, s, p, (to) => e.copy(from, to))));
      }
      p.relocate(packed.flat.storage, packed.flat.offset + offsets.get(p)!);
    }
    if (old) disposePacked(old);
    this.packed.set(g, packed);
    return packed;
  }

  /** Runs fn on the view of p's elements within a packed buffer. */
  protected region(packed: Packed, buffer: Tensor, p: Parameter, fn: (view: Tensor) => void): void {
    const view = this.engine.view(buffer, p.shape, `${buffer.name}[${p.name}]`, packed.offsets.get(p)!);
    try {
      fn(view);
    } finally {
      view.dispose();
    }
  }

  /** Rewrites the update mask when the set of updated parameters or their masks changed. */
  private updateMask(packed: Packed, params: Parameter[]): void {
    const key = params.map((p) => `${p.id}:${p.mask?.id ?? ''}`).join(',');
    if (key === packed.maskKey) return;
    packed.maskKey = key;
    const e = this.engine;
    e.dispatch('fill', { bindings: { out: packed.mask }, uniforms: { n: packed.mask.size, value: 0 }, threads: packed.mask.size });
    for (const p of params) {
      this.region(packed, packed.mask, p, (m) => {
        if (p.mask) e.copy(p.mask, m);
        else e.dispatch('fill', { bindings: { out: m }, uniforms: { n: m.size, value: 1 }, threads: m.size });
      });
    }
  }

  /** min(1, clipNorm / ||g||) over all gradients, as a one-element tensor on the GPU. */
  private clipFactor(params: Parameter[], clipNorm: number): Tensor {
    if (!(clipNorm > 0)) throw new Error(`optimizer: clipNorm ${clipNorm} must be positive`);
    return this.engine.withLabel('clip', () => {
      let total: Tensor | null = null;
      for (const p of params) {
        const sq = square(p.grad!);
        const s = sum(sq);
        sq.dispose();
        if (total) {
          const t: Tensor = add(total, s);
          total.dispose();
          s.dispose();
          total = t;
        } else total = s;
      }
      if (!total) return this.engine.full([1], 1);
      const factor = unary('clip_factor', total, clipNorm);
      total.dispose();
      return factor;
    });
  }

  dispose(): void {
    for (const p of this.packed.values()) disposePacked(p);
    this.packed.clear();
    this.ones.dispose();
    this.scratch.dispose();
  }

  /** State tensors of a packed group of `size` elements, zero-initialised. */
  protected abstract createState(size: number, name: string): Tensor[];
  /** Records the group's update kernel; `params` are the parameters updated this step. */
  protected abstract update(packed: Packed, params: Parameter[], lr: number, weightDecay: number, clip: Tensor): void;
}

export interface SGDOptions extends OptimizerOptions {
  momentum?: number;
  nesterov?: boolean;
}

/** SGD with optional momentum and Nesterov momentum, as torch.optim.SGD with dampening 0. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly nesterov: boolean;

  constructor(params: Params, options: SGDOptions) {
    super(params, options);
    this.momentum = options.momentum ?? 0;
    this.nesterov = options.nesterov ?? false;
    if (this.nesterov && this.momentum <= 0) throw new Error('SGD: Nesterov momentum needs momentum > 0');
  }

  protected createState(size: number, name: string): Tensor[] {
    return this.momentum > 0 ? [this.engine.zeros([size], `${name}.velocity`)] : [];
  }

  protected update(packed: Packed, _params: Parameter[], lr: number, weightDecay: number, clip: Tensor): void {
    const n = packed.flat.size;
    this.engine.dispatch('sgd', {
      bindings: { param: packed.flat, grad: packed.grads, velocity: packed.state[0] ?? this.scratch, mask: packed.mask, clip },
      uniforms: { n, lr, momentum: this.momentum, weight_decay: weightDecay },
      constants: { HAS_MOMENTUM: this.momentum > 0, NESTEROV: this.nesterov },
      threads: n,
    });
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

  constructor(params: Params, options: AdamOptions) {
    super(params, options);
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
  }

  protected createState(size: number, name: string): Tensor[] {
    return [this.engine.zeros([size], `${name}.m`), this.engine.zeros([size], `${name}.v`)];
  }

  protected update(packed: Packed, params: Parameter[], lr: number, weightDecay: number, clip: Tensor): void {
    // Per parameter: first element, end, and its bias corrections 1 - beta^t (as f32 bits).
    const rows = params.map((p) => [packed.offsets.get(p)!, p, this.paramSteps.get(p)!] as const).sort((a, b) => a[0] - b[0]);
    const table = new Uint32Array(4 * packed.offsets.size);
    const bits = new Float32Array(2);
    const asU32 = new Uint32Array(bits.buffer);
    rows.forEach(([start, p, t], i) => {
      bits[0] = 1 - this.beta1 ** t;
      bits[1] = 1 - this.beta2 ** t;
      table.set([start, start + p.size, asU32[0]!, asU32[1]!], 4 * i);
    });
    packed.segments ??= this.engine.keep(this.engine.zeros([table.length], `${packed.flat.name}.segments`));
    const segments = packed.segments;
    this.engine.write(segments, new Float32Array(table.buffer));
    const n = packed.flat.size;
    this.engine.dispatch('adam', {
      bindings: { param: packed.flat, grad: packed.grads, m1: packed.state[0]!, m2: packed.state[1]!, mask: packed.mask, clip, segment: segments },
      uniforms: { n, segments: rows.length, lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weight_decay: weightDecay },
      constants: { DECOUPLED: this.decoupled },
      threads: n,
    });
  }
}

/** AdamW: weight decay applied to the weights directly, as torch.optim.AdamW (default 0.01). */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;

  constructor(params: Params, options: AdamOptions) {
    super(params, { ...options, weightDecay: options.weightDecay ?? 0.01 });
  }
}

function toGroups(params: Params): ParamGroup[] {
  if (params instanceof Map) return [{ params: params.values() }];
  const list = [...(params as Iterable<Parameter | ParamGroup>)];
  if (list.length > 0 && list.every((x) => 'params' in x && !('engine' in x))) return list as ParamGroup[];
  return [{ params: list as Parameter[] }];
}
