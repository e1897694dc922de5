// Task weighting for multi-task training: how the tasks' losses (or their gradients on the shared
// parameters) become one update. Two kinds, as LibMTL divides them:
//   loss-based      combine the task losses into one loss on the GPU, from weights computed on
//                   the GPU or the CPU without reading a loss back each step: EW, UW, DWA, RLW, FAMO
//   gradient-based  the trainer computes each task's gradient on the GPU (of the shared
//                   parameters, or of the shared representation), and only their T×T Gram matrix
//                   (and the T losses) cross to the CPU; the method turns them into coefficients c
//                   and the GPU forms the update sum_t c_t g_t: GradNorm, MGDA, PCGrad, CAGrad
// A task without a labelled row in the batch is absent: its loss is 0 and no method lets it
// move a weight (UW's regulariser, FAMO's and DWA's statistics, GradNorm's ratios) or take part
// in a gradient solve.
import type { Engine } from '../../engine/engine.js';
import { gradients } from '../../engine/autograd.js';
import { noGrad } from '../../engine/graph.js';
import { Module } from '../../engine/module.js';
import { add, addScaledInPlace, dot, exp, inContext, log, mul, reshape, scale, scaleBy, softmax, sub, sum } from '../../engine/ops/index.js';
import { Adam, type Optimizer } from '../../engine/optim.js';
import type { Parameter } from '../../engine/parameters.js';
import { normalGenerator, uniformGenerator } from '../../engine/random.js';
import type { Tensor } from '../../engine/tensor.js';
import { cagradCoefficients, dwaWeights, gradNormStep, minNormCoefficients, pcgradCoefficients, rlwWeights, type MgdaNormalization } from './solvers.js';

/** Where gradient-based methods take the tasks' gradients: the shared parameters, or the shared representation (one trunk backward for all tasks, as MGDA-UB). */
export type GradientSpace = 'parameters' | 'representation';

/** One step's task losses, as a loss-based method gets them. */
export interface LossStep {
  /** The training loop's context: make the step's tensors with it. */
  engine: Engine;
  /** The T task losses (recorded scalars), in task order; 0 for an absent task. */
  losses: Tensor[];
  /** The same as a [T] tensor (recorded). */
  lossVector: Tensor;
  /** Which tasks have labelled rows in this batch. */
  present: readonly boolean[];
  step: number;
}

/** The weights' own trainable vector (log-variances, logits): a module, so it saves and loads like any. */
export class TaskVector extends Module<void, Tensor> {
  readonly value: Parameter;

  constructor(engine: Engine, name: string, initial: Float32Array) {
    super();
    this.value = engine.parameter(initial, [initial.length], name);
  }

  override ownParameters(): [string, Parameter][] {
    return [[this.value.name, this.value]];
  }

  forward(): Tensor {
    return this.value;
  }
}

export abstract class Weighting {
  abstract readonly name: string;
  abstract readonly kind: 'loss' | 'gradient';
  protected tasks: string[] = [];
  protected engine: Engine | null = null;

  /** Called by the trainer before the first step. */
  bind(engine: Engine, tasks: readonly string[]): void {
    if (this.engine && (this.tasks.length !== tasks.length || this.tasks.some((t, i) => t !== tasks[i]))) {
      throw new Error(`${this.name}: already used with tasks [${this.tasks.join(', ')}]; make a new one for tasks [${tasks.join(', ')}]`);
    }
    this.engine = engine;
    this.tasks = [...tasks];
  }

  /** Optimizers the training loop steps after each backward (of parameters the combined loss trains). */
  optimizers(): Optimizer[] {
    return [];
  }

  /** The method's own parameters (saved with the training state), or null. */
  get module(): TaskVector | null {
    return null;
  }

  /** The last step's task weights (or combination coefficients), task order, absent tasks 0; a tensor belongs to `engine`'s context. */
  abstract lastWeights(engine: Engine): Float64Array | Tensor;

  /** After each epoch (DWA's statistics). */
  async endEpoch(): Promise<void> {}

  /** Frees the method's parameters, optimizer state and statistics. */
  dispose(): void {
    for (const o of this.optimizers()) o.dispose();
    this.module?.dispose();
  }
}

export abstract class LossWeighting extends Weighting {
  readonly kind = 'loss' as const;
  /** The loss to backpropagate. */
  abstract combine(s: LossStep): Tensor;
  /**
   * FAMO's update, from the task losses ([T], present tasks of the previous batch) after the
   * parameter update: of the previous batch again ('same': the trainer runs one more forward
   * pass, no backward) or of this step's batch ('next': free, noisier).
   */
  update?(after: Tensor, present: readonly boolean[]): void;
  readonly updateBatch: 'same' | 'next' = 'same';
}

export abstract class GradientWeighting extends Weighting {
  readonly kind = 'gradient' as const;
  /** Whether `coefficients` reads the losses (read back with the Gram matrix). */
  readonly needsLosses: boolean = false;
  protected weights = new Float64Array(0);

  constructor(readonly space: GradientSpace) {
    super();
  }

  /**
   * Coefficients c of the combined shared gradient sum_k c_k g_k for the k present tasks
   * `present` (task indices), from their Gram matrix (row-major k×k, float64) and losses.
   */
  abstract solve(gram: Float64Array, k: number, losses: Float64Array, present: readonly number[], step: number): Float64Array;

  coefficients(gram: Float64Array, k: number, losses: Float64Array, present: readonly number[], step: number): Float64Array {
    const c = this.solve(gram, k, losses, present, step);
    this.weights = new Float64Array(this.tasks.length);
    present.forEach((t, i) => (this.weights[t] = c[i]!));
    return c;
  }

  lastWeights(): Float64Array {
    return this.weights;
  }
}

/** A constant [T] vector on the GPU (0/1 presence, weights). */
function vector(engine: Engine, values: ArrayLike<number>, name: string): Tensor {
  return engine.tensor(Float32Array.from(values), [values.length], name);
}

// ---------------------------------------------------------------- loss-based

/** Equal weighting: the sum of the task losses (LibMTL's EW). */
export class EqualWeighting extends LossWeighting {
  readonly name = 'EW';
  private ones = new Float64Array(0);

  combine(s: LossStep): Tensor {
    this.ones = Float64Array.from(s.present, (p) => (p ? 1 : 0));
    return s.losses.reduce((a, b) => add(a, b));
  }

  lastWeights(): Float64Array {
    return this.ones;
  }
}

/** Weights the losses by a [T] vector fixed for the step: loss = sum_t w_t L_t. */
abstract class FixedWeights extends LossWeighting {
  private current: Float64Array = new Float64Array(0);

  protected abstract weightsFor(s: LossStep): Float64Array;

  combine(s: LossStep): Tensor {
    const w = this.weightsFor(s).map((v, t) => (s.present[t] ? v : 0));
    this.current = w;
    return dot(vector(s.engine, w, `${this.name}.weights`), s.lossVector);
  }

  lastWeights(): Float64Array {
    return this.current;
  }
}

/**
 * Uncertainty weighting (Kendall et al. 2018) as LibMTL: loss = sum_t L_t / (2 exp(s_t)) + s_t / 2
 * with learnable log-variances s (initially -0.5, LibMTL's start), trained with the model by their
 * own Adam at `lr`. An absent task adds nothing (its s_t / 2 would pull its variance down).
 */
export class UncertaintyWeighting extends LossWeighting {
  readonly name = 'UW';
  private logVariance: TaskVector | null = null;
  private optimizer: Adam | null = null;
  private readonly lr: number;

  constructor(options: { lr?: number } = {}) {
    super();
    this.lr = options.lr ?? 1e-3;
  }

  override bind(engine: Engine, tasks: readonly string[]): void {
    super.bind(engine, tasks);
    if (this.logVariance) return;
    this.logVariance = new TaskVector(engine, 'logVariance', new Float32Array(tasks.length).fill(-0.5));
    this.optimizer = new Adam(this.logVariance, { lr: this.lr });
  }

  override get module(): TaskVector | null {
    return this.logVariance;
  }

  override optimizers(): Optimizer[] {
    return this.optimizer ? [this.optimizer] : [];
  }

  combine(s: LossStep): Tensor {
    const logVar = this.logVariance!.value;
    // sum_t present_t (exp(ln 0.5 - s_t) L_t + 0.5 s_t); an absent task's exp(-inf - s_t) is exactly 0.
    // The constants come first, so the outputs belong to the step's context.
    const offset = vector(s.engine, s.present.map((p) => (p ? Math.log(0.5) : -Infinity)), 'UW.offset');
    const half = vector(s.engine, s.present.map((p) => (p ? 0.5 : 0)), 'UW.halfPresent');
    return add(dot(exp(sub(offset, logVar)), s.lossVector), dot(half, logVar));
  }

  lastWeights(engine: Engine): Tensor {
    return noGrad(() => scale(exp(scale(inContext(engine, this.logVariance!.value), -1)), 0.5));
  }
}

/**
 * Dynamic weight average (Liu et al. 2019): w_t = T softmax(r / temperature) with r_t the ratio of
 * task t's mean loss over the last two epochs; 1 for the first two epochs. The epoch means are
 * summed on the GPU (the losses of the steps where the task is present) and read once an epoch.
 */
export class DynamicWeightAverage extends FixedWeights {
  readonly name = 'DWA';
  private sums: Tensor | null = null;
  private counts: number[] = [];
  private readonly history: number[][] = [];
  private weights: Float64Array = new Float64Array(0);

  constructor(private readonly temperature = 2) {
    super();
  }

  override bind(engine: Engine, tasks: readonly string[]): void {
    super.bind(engine, tasks);
    if (this.sums) return;
    this.sums = engine.keep(engine.zeros([tasks.length], 'DWA.lossSums'));
    this.counts = tasks.map(() => 0);
    this.weights = dwaWeights(this.history, tasks.length, this.temperature);
  }

  protected weightsFor(s: LossStep): Float64Array {
    noGrad(() => addScaledInPlace(this.sums!, s.lossVector));
    s.present.forEach((p, t) => (this.counts[t]! += p ? 1 : 0));
    return this.weights;
  }

  override async endEpoch(): Promise<void> {
    const sums = await this.sums!.data();
    // A task never present this epoch keeps its last mean (its ratio is then 1).
    const last = this.history.at(-1);
    this.history.push(this.counts.map((c, t) => (c > 0 ? sums[t]! / c : (last?.[t] ?? 1))));
    this.engine!.dispatch('fill', { bindings: { out: this.sums! }, uniforms: { n: this.tasks.length, value: 0 }, threads: this.tasks.length });
    this.counts.fill(0);
    this.weights = dwaWeights(this.history, this.tasks.length, this.temperature);
  }

  override dispose(): void {
    this.sums?.dispose();
    this.sums = null;
    super.dispose();
  }
}

/** Random loss weighting (Lin et al. 2021): each step, w = softmax of T standard normal draws (LibMTL's default). */
export class RandomLossWeighting extends FixedWeights {
  readonly name = 'RLW';

  constructor(private readonly seed = 1) {
    super();
  }

  protected weightsFor(s: LossStep): Float64Array {
    return rlwWeights(this.tasks.length, normalGenerator(uniformGenerator(this.seed * 1_000_003 + s.step)));
  }
}

/**
 * FAMO (Liu et al. 2023), as its reference code: task logits xi, z = softmax(xi); the update
 * follows sum_t z_t log L_t / c with c = sum_t z_t / L_t (weights z_t / (c L_t) on the task
 * gradients); after the parameter update, the losses of the same batch are computed again (one
 * forward pass, no backward) and xi moves by Adam (lr 0.025, weight decay gamma 0.001) along
 * the softmax Jacobian applied to the decrease of log L_t. Constant in T. `updateBatch: 'next'`
 * takes the decrease from the next step's batch instead: no extra forward pass, at the price of
 * batch-to-batch noise in the decrease.
 */
export class FAMO extends LossWeighting {
  readonly name = 'FAMO';
  private logits: TaskVector | null = null;
  private optimizer: Adam | null = null;
  /** log L_t of the previous batch before the update, and which tasks it had. */
  private before: { logLoss: Tensor; present: boolean[] } | null = null;
  private current: Tensor | null = null;
  private readonly lr: number;
  private readonly gamma: number;

  override readonly updateBatch: 'same' | 'next';

  constructor(options: { lr?: number; gamma?: number; updateBatch?: 'same' | 'next' } = {}) {
    super();
    this.lr = options.lr ?? 0.025;
    this.gamma = options.gamma ?? 0.001;
    this.updateBatch = options.updateBatch ?? 'same';
  }

  override bind(engine: Engine, tasks: readonly string[]): void {
    super.bind(engine, tasks);
    if (this.logits) return;
    this.logits = new TaskVector(engine, 'logits', new Float32Array(tasks.length));
    this.optimizer = new Adam(this.logits, { lr: this.lr, weightDecay: this.gamma });
  }

  override get module(): TaskVector | null {
    return this.logits;
  }

  /** log(L_t + 1e-8), with 1 in place of an absent task's loss (so that its log is 0, not -18). */
  private logLoss(engine: Engine, losses: Tensor, present: readonly boolean[]): Tensor {
    return log(add(losses, vector(engine, present.map((p) => (p ? 1e-8 : 1)), 'FAMO.offset')));
  }

  combine(s: LossStep): Tensor {
    const e = s.engine;
    const weights = noGrad(() => {
      const T = this.tasks.length;
      const z = mul(reshape(softmax(reshape(inContext(e, this.logits!.value), [1, T])), [T]), vector(e, s.present.map(Number), 'FAMO.present'));
      const logLoss = this.logLoss(e, s.lossVector, s.present);
      this.keepBefore(logLoss, s.present);
      const q = mul(z, exp(scale(logLoss, -1))); // z_t / L_t
      return scaleBy(q, exp(scale(log(sum(q)), -1))); // / c
    });
    this.current?.dispose();
    this.current = e.keep(weights);
    return dot(weights, s.lossVector);
  }

  private keepBefore(logLoss: Tensor, present: readonly boolean[]): void {
    this.before?.logLoss.dispose();
    this.before = { logLoss: logLoss.engine.keep(logLoss), present: [...present] };
  }

  override update(after: Tensor, present: readonly boolean[]): void {
    if (!this.before) return;
    const { logLoss } = this.before;
    const both = this.before.present.map((p, t) => p && present[t]!);
    const e = after.engine;
    const delta = noGrad(() => mul(sub(logLoss, this.logLoss(e, after, present)), vector(e, both.map(Number), 'FAMO.present')));
    const T = this.tasks.length;
    const logits = this.logits!.value;
    const z = softmax(reshape(inContext(e, logits), [1, T]));
    const g = gradients(z, [logits], reshape(delta, [1, T])).get(logits)!;
    e.copy(g, logits.gradView());
    logits.markGradient();
    this.optimizer!.step();
    this.optimizer!.zeroGrad();
    g.dispose();
  }

  lastWeights(engine: Engine): Tensor {
    const T = this.tasks.length;
    return this.current ? engine.view(this.current, [T], 'FAMO.weights') : engine.zeros([T], 'FAMO.weights');
  }

  override dispose(): void {
    this.before?.logLoss.dispose();
    this.current?.dispose();
    this.before = null;
    this.current = null;
    this.optimizer?.dispose();
    super.dispose();
  }
}

// ---------------------------------------------------------------- gradient-based

/**
 * GradNorm (Chen et al. 2018) as LibMTL: weights w = T softmax(logits) balance the tasks'
 * gradient norms n_t toward mean_t(w_t n_t) r_t^alpha, r_t the task's relative inverse training
 * rate (L_t / L_t(0) over its mean); the shared update is sum_t w_t g_t with this step's weights,
 * then the logits take an Adam step (float64 on the CPU: T numbers, used only there) down
 * sum_t |w_t n_t - target_t|. L_t(0) is the task's first loss. When tasks are absent, the step
 * balances the present ones among themselves.
 */
export class GradNorm extends GradientWeighting {
  readonly name = 'GradNorm';
  override readonly needsLosses = true;
  private readonly alpha: number;
  private readonly lr: number;
  private logitValues = new Float64Array(0);
  private initial = new Float64Array(0);
  private adamM = new Float64Array(0);
  private adamV = new Float64Array(0);
  private adamSteps = 0;

  constructor(options: { alpha?: number; lr?: number; space?: GradientSpace } = {}) {
    super(options.space ?? 'parameters');
    this.alpha = options.alpha ?? 1.5;
    this.lr = options.lr ?? 1e-3;
  }

  override bind(engine: Engine, tasks: readonly string[]): void {
    super.bind(engine, tasks);
    if (this.logitValues.length) return;
    this.logitValues = new Float64Array(tasks.length);
    this.initial = new Float64Array(tasks.length).fill(Number.NaN);
    this.adamM = new Float64Array(tasks.length);
    this.adamV = new Float64Array(tasks.length);
  }

  /** The logits of the task weights (w = T softmax(logits)). */
  get logits(): Float64Array {
    return this.logitValues.slice();
  }

  solve(gram: Float64Array, k: number, losses: Float64Array, present: readonly number[]): Float64Array {
    for (const t of present) if (Number.isNaN(this.initial[t]!)) this.initial[t] = losses[t]!;
    const norms = Float64Array.from(present, (_, i) => Math.sqrt(Math.max(0, gram[i * k + i]!)));
    const pick = (v: Float64Array) => Float64Array.from(present, (t) => v[t]!);
    const { weights, logitGradient } = gradNormStep(pick(this.logitValues), norms, pick(losses), pick(this.initial), this.alpha);
    // Adam (beta 0.9, 0.999, eps 1e-8) on the present tasks' logits.
    this.adamSteps++;
    const c1 = 1 - 0.9 ** this.adamSteps;
    const c2 = 1 - 0.999 ** this.adamSteps;
    present.forEach((t, i) => {
      const g = logitGradient[i]!;
      this.adamM[t] = 0.9 * this.adamM[t]! + 0.1 * g;
      this.adamV[t] = 0.999 * this.adamV[t]! + 0.001 * g * g;
      this.logitValues[t]! -= (this.lr * this.adamM[t]! / c1) / (Math.sqrt(this.adamV[t]! / c2) + 1e-8);
    });
    return weights;
  }
}

/**
 * MGDA (Sener and Koltun 2018): the min-norm point of the convex hull of the task gradients. By
 * default on the gradients of the shared representation (MGDA-UB: one trunk backward for all
 * tasks); `normalisation` as LibMTL's mgda_gn.
 */
export class MGDA extends GradientWeighting {
  readonly name = 'MGDA';
  override readonly needsLosses: boolean;

  constructor(private readonly options: { space?: GradientSpace; normalization?: MgdaNormalization } = {}) {
    super(options.space ?? 'representation');
    this.needsLosses = (options.normalization ?? 'none').startsWith('loss');
  }

  solve(gram: Float64Array, k: number, losses: Float64Array, present: readonly number[]): Float64Array {
    return minNormCoefficients(gram, k, { normalization: this.options.normalization ?? 'none', losses: Float64Array.from(present, (t) => losses[t]!) }).coefficients;
  }
}

/** PCGrad (Yu et al. 2020): each task gradient loses its component along every other task gradient it conflicts with, in a random order per step. */
export class PCGrad extends GradientWeighting {
  readonly name = 'PCGrad';

  constructor(private readonly options: { space?: GradientSpace; seed?: number } = {}) {
    super(options.space ?? 'parameters');
  }

  solve(gram: Float64Array, k: number, _losses: Float64Array, _present: readonly number[], step: number): Float64Array {
    return pcgradCoefficients(gram, k, { random: uniformGenerator((this.options.seed ?? 1) * 7919 + step) });
  }
}

/** CAGrad (Liu et al. 2021): the update that maximises the worst task's improvement within a ball of radius c ||g0|| around the mean gradient g0. */
export class CAGrad extends GradientWeighting {
  readonly name = 'CAGrad';

  constructor(private readonly options: { space?: GradientSpace; c?: number; rescale?: 0 | 1 | 2 } = {}) {
    super(options.space ?? 'parameters');
  }

  solve(gram: Float64Array, k: number): Float64Array {
    return cagradCoefficients(gram, k, { c: this.options.c ?? 0.5, rescale: this.options.rescale ?? 1 }).coefficients;
  }
}

/** The methods by name, with their default settings. */
export const WEIGHTINGS = {
  EW: () => new EqualWeighting(),
  UW: () => new UncertaintyWeighting(),
  DWA: () => new DynamicWeightAverage(),
  RLW: () => new RandomLossWeighting(),
  FAMO: () => new FAMO(),
  GradNorm: () => new GradNorm(),
  MGDA: () => new MGDA(),
  PCGrad: () => new PCGrad(),
  CAGrad: () => new CAGrad(),
} as const satisfies Record<string, () => Weighting>;

export type WeightingName = keyof typeof WEIGHTINGS;

export function makeWeighting(name: string): Weighting {
  const make = (WEIGHTINGS as Record<string, () => Weighting>)[name];
  if (!make) throw new Error(`makeWeighting: unknown method "${name}" (methods: ${Object.keys(WEIGHTINGS).join(', ')})`);
  return make();
}
