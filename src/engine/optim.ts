// Optimizers: one fused WGSL kernel per parameter update (sgd.wgsl, adam.wgsl). Parameter
// groups carry their own learning rate and weight decay; an optional global-norm clip is
// computed on the GPU and read by the update kernels, so a step needs no readback.
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

export abstract class Optimizer {
  readonly groups: Group[];
  /** Steps taken so far. */
  steps = 0;
  clipNorm: number | undefined;
  schedule: Schedule | undefined;
  protected readonly engine: Engine;
  protected readonly state = new Map<Parameter, { tensors: Tensor[]; steps: number }>();
  // Bound where a shader's binding is unused (no mask, no momentum) and as the clip factor 1.
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

  /** Applies one update to every unfrozen parameter that has a gradient. Records GPU work only. */
  step(): void {
    const active = this.groups.map((g) => g.params.filter((p) => p.grad && !p.frozen));
    noGrad(() => {
      const clip = this.clipNorm === undefined ? this.ones : this.clipFactor(active.flat(), this.clipNorm);
      this.groups.forEach((g, i) => {
        const lr = this.lr(i);
        for (const p of active[i]!) {
          let s = this.state.get(p);
          if (!s) {
            s = { tensors: this.createState(p), steps: 0 };
            this.state.set(p, s);
          }
          s.steps++;
          this.engine.withLabel(p.name, () => this.update(p, p.grad!, s.tensors, s.steps, lr, g.weightDecay, clip));
        }
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
    for (const s of this.state.values()) for (const t of s.tensors) t.dispose();
    this.state.clear();
    this.ones.dispose();
    this.scratch.dispose();
  }

  protected abstract createState(p: Parameter): Tensor[];
  protected abstract update(p: Parameter, grad: Tensor, state: Tensor[], step: number, lr: number, weightDecay: number, clip: Tensor): void;
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

  protected createState(p: Parameter): Tensor[] {
    return this.momentum > 0 ? [this.engine.keep(this.engine.zeros(p.shape, `${p.name}.velocity`))] : [];
  }

  protected update(p: Parameter, grad: Tensor, state: Tensor[], _step: number, lr: number, weightDecay: number, clip: Tensor): void {
    this.engine.dispatch('sgd', {
      bindings: { param: p, grad, velocity: state[0] ?? this.scratch, mask: p.mask ?? this.ones, clip },
      uniforms: { n: p.size, lr, momentum: this.momentum, weight_decay: weightDecay },
      constants: { HAS_MASK: p.mask !== null, HAS_MOMENTUM: this.momentum > 0, NESTEROV: this.nesterov },
      threads: p.size,
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

  protected createState(p: Parameter): Tensor[] {
    return [this.engine.keep(this.engine.zeros(p.shape, `${p.name}.m`)), this.engine.keep(this.engine.zeros(p.shape, `${p.name}.v`))];
  }

  protected update(p: Parameter, grad: Tensor, state: Tensor[], step: number, lr: number, weightDecay: number, clip: Tensor): void {
    this.engine.dispatch('adam', {
      bindings: { param: p, grad, m1: state[0]!, m2: state[1]!, mask: p.mask ?? this.ones, clip },
      uniforms: {
        n: p.size,
        lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weight_decay: weightDecay,
        bc1: 1 - this.beta1 ** step,
        bc2: 1 - this.beta2 ** step,
      },
      constants: { HAS_MASK: p.mask !== null, DECOUPLED: this.decoupled },
      threads: p.size,
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
