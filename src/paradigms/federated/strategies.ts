// Federated aggregation strategies, after Flower's (flwr/server/strategy): each turns one round's
// client updates into the new global weights, on the GPU, over the stacked updates.
//
// Updates are deltas: row k of `updates` [K, P] is client k's trainable parameters after local
// training minus the global weights [P] it started from. Flower aggregates the weights
// themselves; the results are the same: FedAvg of the weights is global + FedAvg of the deltas
// (the example weights sum to one), and the coordinate-wise median, the trimmed mean and Krum's
// distances are translation-invariant. Each strategy returns a new [P] tensor (the caller owns
// it) and keeps any server state (momentum, moments) as engine-kept [P] tensors it owns and
// frees on dispose(). Only Krum reads anything back: the K x K distances.
//
// Under secure aggregation the server sees only the clients' weighted sum: aggregateSum takes it
// to the weighted mean, which is all FedAvg and the server optimizers use; FedMedian,
// FedTrimmedAvg and Krum need each client's update and refuse it. saveState and loadState carry
// a strategy's round count and state as plain data, for a server that must resume after a restart.
import type { Engine } from '../../engine/engine.js';
import type { RdpAccountantState } from './accountant.js';
import { add, coordinateMedian, pairwiseSquaredDistances, serverOptimizerStep, trimmedMean, weightedAverage, weightedSum, type ServerOptimizerSettings, type ServerOptimizerVariant } from '../../engine/ops/index.js';
import { shapeString, type Tensor } from '../../engine/tensor.js';
import { acceptedStack } from './checks.js';

/** A strategy's state as plain data: its rounds, its [P] tensors and its numbers (an RdpAccountant's for DPFedAvg). */
export interface StrategyState {
  /** The strategy's name; a state loads only into a strategy of the same name. */
  name: string;
  /** Rounds aggregated. */
  round: number;
  tensors: Record<string, Float32Array>;
  scalars: Record<string, number>;
  /** DPFedAvg's accountant. */
  accountant?: RdpAccountantState;
}

export abstract class Strategy {
  abstract readonly name: string;
  private disposed = false;
  private rounds = 0;

  /**
   * The new global weights [P] from the global weights [P], the round's client updates [K, P]
   * (client weights - global) and each client's number of training examples.
   */
  async aggregate(global: Tensor, updates: Tensor, examples: readonly number[]): Promise<Tensor> {
    this.check(global, updates, examples);
    const out = await this.combine(global, updates, examples);
    this.rounds++;
    return out;
  }

  /**
   * The new global weights [P] from the global weights [P] and what secure aggregation gives the
   * server: the sum [P] of `clients` clients' updates, each weighted by w_k (its examples, or 1)
   * before masking, and totalWeight = sum_k w_k.
   */
  async aggregateSum(global: Tensor, sum: Tensor, totalWeight: number, clients: number): Promise<Tensor> {
    const op = `${this.name}.aggregateSum`;
    this.checkAlive(op);
    checkSummable(op, this);
    global.assertAlive(op);
    sum.assertAlive(op);
    if (global.rank !== 1 || sum.rank !== 1 || sum.size !== global.size) {
      throw new Error(`${op}: expected global [P] and sum [P]; got global ${global.name} ${shapeString(global.shape)}, sum ${sum.name} ${shapeString(sum.shape)}`);
    }
    if (!(totalWeight > 0) || !Number.isFinite(totalWeight)) throw new Error(`${op}: totalWeight ${totalWeight} must be a positive finite number`);
    if (!Number.isSafeInteger(clients) || clients < 1) throw new Error(`${op}: clients ${clients} must be a positive integer`);
    const out = await this.combineSum(global, sum, totalWeight, clients);
    this.rounds++;
    return out;
  }

  /** Whether aggregating needs each client's update, so that the clients' sum (secure aggregation) cannot stand for them. */
  get needsIndividualUpdates(): boolean {
    return true;
  }

  /** The fewest updates a round needs for this strategy to aggregate (a server leaves the model unchanged below it). */
  get minimumUpdates(): number {
    return 1;
  }

  /** Rounds aggregated so far. */
  get round(): number {
    return this.rounds;
  }

  /** The rounds aggregated and the strategy's state, read back. */
  async saveState(): Promise<StrategyState> {
    this.checkAlive(`${this.name}.saveState`);
    return { name: this.name, round: this.rounds, tensors: {}, scalars: {} };
  }

  /** Continues from a saved state: refused, naming what differs, unless it is this strategy's kind with the tensors and numbers it keeps. */
  loadState(state: StrategyState, engine: Engine): void {
    const op = `${this.name}.loadState`;
    this.checkAlive(op);
    if (state.name !== this.name) throw new Error(`${op}: the state is ${state.name}'s; this strategy is ${this.name}`);
    if (!Number.isSafeInteger(state.round) || state.round < 0) throw new Error(`${op}: round ${state.round} must be an integer >= 0`);
    const names = this.stateNames(state.round);
    for (const [what, got, want] of [['tensors', state.tensors, names.tensors], ['scalars', state.scalars, names.scalars]] as const) {
      const keys = Object.keys(got).sort();
      if (keys.join() !== [...want].sort().join()) throw new Error(`${op}: the state holds ${what} [${keys.join(', ')}] after round ${state.round}; ${this.name} keeps [${want.join(', ')}]`);
    }
    this.restoreState(state, engine);
    this.rounds = state.round;
  }

  /** Frees the strategy's state; it cannot aggregate afterwards. */
  dispose(): void {
    this.disposed = true;
  }

  protected abstract combine(global: Tensor, updates: Tensor, examples: readonly number[]): Tensor | Promise<Tensor>;

  /** The weighted mean of the round's updates, sum / totalWeight, aggregated as the one update of a [1, P] round: exact for strategies that use only the weighted mean. */
  protected async combineSum(global: Tensor, sum: Tensor, totalWeight: number, _clients: number): Promise<Tensor> {
    const engine = global.engine;
    const rows = engine.view(sum, [1, sum.size]);
    try {
      this.check(global, rows, [1]);
      const mean = weightedSum(rows, [1 / totalWeight], { into: engine.empty(rows.shape, `${sum.name}.mean`) });
      try {
        return await this.combine(global, mean, [1]);
      } finally {
        mean.dispose();
      }
    } finally {
      rows.dispose();
    }
  }

  /** The names of the tensors and scalars the strategy keeps after `round` rounds (none by default). */
  protected stateNames(_round: number): { tensors: readonly string[]; scalars: readonly string[] } {
    return { tensors: [], scalars: [] };
  }

  /** Takes on a state whose names loadState has checked (validating its values before changing anything). */
  protected restoreState(_state: StrategyState, _engine: Engine): void {}

  private checkAlive(op: string): void {
    if (this.disposed) throw new Error(`${op}: the strategy has been disposed`);
  }

  /** Checks one round's inputs before anything is allocated (subclasses add their own limits). */
  protected check(global: Tensor, updates: Tensor, examples: readonly number[]): void {
    const op = `${this.name}.aggregate`;
    this.checkAlive(op);
    global.assertAlive(op);
    updates.assertAlive(op);
    const shapes = `global ${global.name} ${shapeString(global.shape)}, updates ${updates.name} ${shapeString(updates.shape)}`;
    if (global.rank !== 1 || updates.rank !== 2 || updates.shape[1] !== global.shape[0]) {
      throw new Error(`${op}: expected global [P] and updates [K, P]; got ${shapes}`);
    }
    const K = updates.shape[0]!;
    if (K === 0) throw new Error(`${op}: no client updates (K = 0; ${shapes})`);
    if (examples.length !== K) throw new Error(`${op}: ${examples.length} example counts for K = ${K} updates (${shapes})`);
    if (examples.some((n) => !Number.isFinite(n) || n < 0)) throw new Error(`${op}: example counts [${examples.join(', ')}] must be finite and >= 0`);
    const total = examples.reduce((s, n) => s + n, 0);
    if (!(total > 0)) throw new Error(`${op}: example counts [${examples.join(', ')}] sum to ${total}; the total must be positive`);
  }
}

/** Throws unless the strategy can aggregate from the clients' sum alone (secure aggregation). */
export function checkSummable(op: string, strategy: Strategy): void {
  if (strategy.needsIndividualUpdates) throw new Error(`${op}: ${strategy.name} needs each client's update; secure aggregation gives the server only their sum`);
}

/** global + (weighted average of the deltas): Flower's aggregate. */
function fedAvg(global: Tensor, updates: Tensor, examples: readonly number[]): Tensor {
  const avg = weightedAverage(updates, examples);
  const out = add(global, avg);
  avg.dispose();
  return out;
}

/** FedAvg (McMahan et al. 2017): the average of the clients' weights, weighted by their numbers of examples. */
export class FedAvg extends Strategy {
  readonly name = 'FedAvg';

  override get needsIndividualUpdates(): boolean {
    return false;
  }

  protected combine(global: Tensor, updates: Tensor, examples: readonly number[]): Tensor {
    return fedAvg(global, updates, examples);
  }
}

/** The state tensors each server optimizer keeps, in the order serverStep passes them. */
const SERVER_STATE: Record<ServerOptimizerVariant, readonly string[]> = { avgm: ['momentum'], adam: ['m', 'v'], yogi: ['m', 'v'], adagrad: ['v'] };

/** A server optimizer: [P] state tensors, made on the first round and kept for the following ones. */
abstract class StatefulStrategy extends Strategy {
  protected state: Tensor[] = [];

  constructor(private readonly variant: ServerOptimizerVariant) {
    super();
  }

  override get needsIndividualUpdates(): boolean {
    return false;
  }

  override async saveState(): Promise<StrategyState> {
    const saved = await super.saveState();
    const data = await Promise.all(this.state.map((t) => t.data()));
    return { ...saved, tensors: Object.fromEntries(data.map((d, i) => [SERVER_STATE[this.variant][i]!, d])) };
  }

  /** The state tensors exist from the first round on. */
  protected override stateNames(round: number): { tensors: readonly string[]; scalars: readonly string[] } {
    return { tensors: round > 0 ? SERVER_STATE[this.variant] : [], scalars: [] };
  }

  protected override restoreState(state: StrategyState, engine: Engine): void {
    const names = this.stateNames(state.round).tensors;
    const sizes = names.map((n) => state.tensors[n]!.length);
    if (new Set(sizes).size > 1) throw new Error(`${this.name}.loadState: state tensors [${names.join(', ')}] have different lengths [${sizes.join(', ')}]`);
    for (const t of this.state) t.dispose();
    this.state = names.map((n) => engine.keep(engine.tensor(state.tensors[n]!, [sizes[0]!], `${this.name}.${n}`)));
  }

  protected override check(global: Tensor, updates: Tensor, examples: readonly number[]): void {
    super.check(global, updates, examples);
    const held = this.state[0];
    if (held && held.size !== global.size) {
      throw new Error(`${this.name}.aggregate: global ${global.name} ${shapeString(global.shape)} has ${global.size} elements; the strategy's state was made for ${held.size}`);
    }
  }

  /** One server-optimizer round: FedAvg of the deltas, then the variant's update of the global weights and the state (zeros on the first round). */
  protected serverStep(global: Tensor, updates: Tensor, examples: readonly number[], settings: ServerOptimizerSettings): Tensor {
    const engine = global.engine;
    if (this.state.length === 0) {
      this.state = SERVER_STATE[this.variant].map((n) => engine.keep(engine.zeros([global.size], `${this.name}.${n}`)));
    }
    const [m, v] = this.variant === 'adagrad' ? [undefined, this.state[0]] : this.state;
    const avg = weightedAverage(updates, examples);
    const out = serverOptimizerStep(this.variant, global, avg, { ...settings, m, v });
    avg.dispose();
    return out;
  }

  override dispose(): void {
    for (const t of this.state) t.dispose();
    this.state = [];
    super.dispose();
  }
}

export interface FedAvgMOptions {
  /** Default 1.0 (Flower's server_learning_rate). */
  serverLearningRate?: number;
  /** Default 0.0 (Flower's server_momentum). */
  serverMomentum?: number;
}

/**
 * FedAvgM (Hsu et al. 2019), as Flower's: the pseudo-gradient g = global - FedAvg(weights) drives
 * server SGD with momentum, m = momentum m + g (m = g on the first round), global' = global -
 * serverLearningRate m. With the defaults it is FedAvg.
 */
export class FedAvgM extends StatefulStrategy {
  readonly name = 'FedAvgM';
  readonly serverLearningRate: number;
  readonly serverMomentum: number;

  constructor(options: FedAvgMOptions = {}) {
    super('avgm');
    this.serverLearningRate = options.serverLearningRate ?? 1.0;
    this.serverMomentum = options.serverMomentum ?? 0.0;
    if (!(this.serverLearningRate > 0) || !Number.isFinite(this.serverLearningRate)) throw new Error(`FedAvgM: serverLearningRate ${this.serverLearningRate} must be a positive finite number`);
    if (!(this.serverMomentum >= 0) || !Number.isFinite(this.serverMomentum)) throw new Error(`FedAvgM: serverMomentum ${this.serverMomentum} must be a finite number >= 0`);
  }

  protected combine(global: Tensor, updates: Tensor, examples: readonly number[]): Tensor {
    return this.serverStep(global, updates, examples, { rate: this.serverLearningRate, beta1: this.serverMomentum });
  }
}

export interface FedOptOptions {
  /** Server learning rate. */
  eta?: number;
  /** First-moment decay (FedAdam, FedYogi). */
  beta1?: number;
  /** Second-moment decay (FedAdam, FedYogi). */
  beta2?: number;
  /** Adaptivity: the denominator is sqrt(v) + tau. */
  tau?: number;
}

/**
 * Adaptive federated optimisation (Reddi et al. 2021, "Adaptive Federated Optimization"), as
 * Flower's FedOpt family: delta = FedAvg(weights) - global, m = beta1 m + (1 - beta1) delta, v
 * by the variant, global' = global + eta m / (sqrt(v) + tau).
 */
abstract class FedOpt extends StatefulStrategy {
  readonly eta: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;

  constructor(variant: ServerOptimizerVariant, name: string, options: FedOptOptions, defaults: Required<FedOptOptions>) {
    super(variant);
    this.eta = options.eta ?? defaults.eta;
    this.beta1 = options.beta1 ?? defaults.beta1;
    this.beta2 = options.beta2 ?? defaults.beta2;
    this.tau = options.tau ?? defaults.tau;
    if (!(this.eta > 0) || !Number.isFinite(this.eta)) throw new Error(`${name}: eta ${this.eta} must be a positive finite number`);
    for (const [key, b] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(b >= 0 && b < 1)) throw new Error(`${name}: ${key} ${b} must be in [0, 1)`);
    }
    if (!(this.tau >= 0) || !Number.isFinite(this.tau)) throw new Error(`${name}: tau ${this.tau} must be a finite number >= 0`);
  }
}

/**
 * FedAdam: v = beta2 v + (1 - beta2) delta^2, and eta scaled by Adam's bias correction as in
 * Flower's fedadam.py, eta sqrt(1 - beta2^(t+1)) / (1 - beta1^(t+1)) in round t = 1, 2, ...
 * Defaults (Flower): eta 0.1, beta1 0.9, beta2 0.99, tau 1e-9.
 */
export class FedAdam extends FedOpt {
  readonly name = 'FedAdam';

  constructor(options: FedOptOptions = {}) {
    super('adam', 'FedAdam', options, { eta: 1e-1, beta1: 0.9, beta2: 0.99, tau: 1e-9 });
  }

  protected combine(global: Tensor, updates: Tensor, examples: readonly number[]): Tensor {
    const t = this.round + 1;
    const rate = (this.eta * Math.sqrt(1 - this.beta2 ** (t + 1))) / (1 - this.beta1 ** (t + 1));
    return this.serverStep(global, updates, examples, { rate, beta1: this.beta1, beta2: this.beta2, tau: this.tau });
  }
}

/**
 * FedYogi: v = v - (1 - beta2) delta^2 sign(v - delta^2), no bias correction (Flower's fedyogi.py).
 * Defaults (Flower): eta 0.01, beta1 0.9, beta2 0.99, tau 1e-3.
 */
export class FedYogi extends FedOpt {
  readonly name = 'FedYogi';

  constructor(options: FedOptOptions = {}) {
    super('yogi', 'FedYogi', options, { eta: 1e-2, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
  }

  protected combine(global: Tensor, updates: Tensor, examples: readonly number[]): Tensor {
    return this.serverStep(global, updates, examples, { rate: this.eta, beta1: this.beta1, beta2: this.beta2, tau: this.tau });
  }
}

/**
 * FedAdagrad: v = v + delta^2, m = delta (Flower fixes beta1 = beta2 = 0; only eta and tau are
 * options). Defaults (Flower): eta 0.1, tau 1e-9.
 */
export class FedAdagrad extends FedOpt {
  readonly name = 'FedAdagrad';

  constructor(options: Pick<FedOptOptions, 'eta' | 'tau'> = {}) {
    super('adagrad', 'FedAdagrad', { eta: options.eta, tau: options.tau }, { eta: 1e-1, beta1: 0, beta2: 0, tau: 1e-9 });
  }

  protected combine(global: Tensor, updates: Tensor, examples: readonly number[]): Tensor {
    return this.serverStep(global, updates, examples, { rate: this.eta, tau: this.tau });
  }
}

/** FedMedian (Yin et al. 2018): the coordinate-wise median of the clients' weights, unweighted (Flower's aggregate_median). */
export class FedMedian extends Strategy {
  readonly name = 'FedMedian';

  protected combine(global: Tensor, updates: Tensor): Tensor {
    const median = coordinateMedian(updates);
    const out = add(global, median);
    median.dispose();
    return out;
  }
}

/**
 * FedTrimmedAvg (Yin et al. 2018): per coordinate, the floor(beta K) smallest and as many largest
 * client values are dropped and the rest averaged, unweighted (Flower's aggregate_trimmed_avg,
 * scipy's trim_mean). beta in [0, 0.5); default 0.2 (Flower).
 */
export class FedTrimmedAvg extends Strategy {
  readonly name = 'FedTrimmedAvg';

  constructor(readonly beta = 0.2) {
    super();
    if (!(beta >= 0 && beta < 0.5)) throw new Error(`FedTrimmedAvg: beta ${beta} must be in [0, 0.5)`);
  }

  protected combine(global: Tensor, updates: Tensor): Tensor {
    const mean = trimmedMean(updates, this.beta);
    const out = add(global, mean);
    mean.dispose();
    return out;
  }
}

/**
 * Krum (Blanchard et al. 2017) and Multi-Krum, as Flower's aggregate_krum: each update's score is
 * the sum of its squared distances to its K - f - 2 nearest other updates (f = numMalicious); Krum
 * takes the update with the lowest score, Multi-Krum (toKeep = m > 0) the average of the m lowest,
 * weighted by their example counts. The K x K distances are computed on the GPU and read back;
 * the chosen rows are copied out of the stack and averaged there (a copy rather than 0/1 weights,
 * so a non-finite update that is not chosen cannot reach the result through 0 * inf).
 * Requires K > 2f + 2 (Blanchard et al.'s condition; Flower clamps K - f - 2 to at least 1).
 * Defaults (Flower): numMalicious 0, toKeep 0 (plain Krum).
 */
export class Krum extends Strategy {
  readonly name: string;

  constructor(
    readonly numMalicious = 0,
    readonly toKeep = 0,
  ) {
    super();
    this.name = toKeep > 0 ? 'MultiKrum' : 'Krum';
    if (!Number.isInteger(numMalicious) || numMalicious < 0) throw new Error(`Krum: numMalicious ${numMalicious} must be an integer >= 0`);
    if (!Number.isInteger(toKeep) || toKeep < 0) throw new Error(`Krum: toKeep ${toKeep} must be an integer >= 0 (0: plain Krum)`);
  }

  /** Blanchard et al.'s condition K > 2f + 2. */
  override get minimumUpdates(): number {
    return 2 * this.numMalicious + 3;
  }

  protected override check(global: Tensor, updates: Tensor, examples: readonly number[]): void {
    super.check(global, updates, examples);
    const K = updates.shape[0]!;
    const f = this.numMalicious;
    if (K <= 2 * f + 2) throw new Error(`${this.name}.aggregate: K = ${K} updates with numMalicious f = ${f}; Krum needs K > 2f + 2 = ${2 * f + 2}`);
    if (this.toKeep > K) throw new Error(`${this.name}.aggregate: toKeep ${this.toKeep} exceeds the K = ${K} updates`);
  }

  protected async combine(global: Tensor, updates: Tensor, examples: readonly number[]): Promise<Tensor> {
    const K = updates.shape[0]!;
    const distances = pairwiseSquaredDistances(updates);
    const d = await distances.data();
    distances.dispose();
    const chosen = krumSelect(d, K, this.numMalicious, this.toKeep);
    const stack = acceptedStack(updates, chosen);
    const out = fedAvg(global, stack, this.toKeep > 0 ? chosen.map((k) => examples[k]!) : [1]);
    stack.dispose();
    return out;
  }
}

/**
 * The clients Krum chooses from the K x K squared distances (row-major): the lowest score (the
 * first on ties, as numpy's argmin), or the toKeep lowest. A NaN distance counts as +inf.
 */
function krumSelect(distances: ArrayLike<number>, K: number, numMalicious: number, toKeep: number): number[] {
  const closest = Math.max(1, K - numMalicious - 2);
  const finite = (v: number) => (Number.isNaN(v) ? Infinity : v);
  const scores = Array.from({ length: K }, (_, i) => {
    const others = Array.from({ length: K }, (_, j) => finite(distances[i * K + j]!)).filter((_, j) => j !== i);
    others.sort((a, b) => a - b);
    return others.slice(0, closest).reduce((s, v) => s + v, 0);
  });
  const order = scores.map((s, i) => [finite(s), i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return order.slice(0, Math.max(1, toKeep)).map(([, i]) => i);
}
