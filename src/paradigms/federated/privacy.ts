// DP-FedAvg: user-level differential privacy for federated averaging (McMahan et al. 2018,
// "Learning Differentially Private Recurrent Language Models", arXiv:1710.06963), with the
// clipping norm fixed or following a quantile of the update norms (Andrew et al. 2021,
// "Differentially Private Learning with Adaptive Clipping", arXiv:1905.03871), as TensorFlow
// Federated's DifferentiallyPrivateFactory.gaussian_fixed / gaussian_adaptive build it from TF
// Privacy's GaussianSumQuery / QuantileAdaptiveClipSumQuery (geometric update), normalised by the
// expected number of clients. Flower's DifferentialPrivacyServerSide{Fixed,Adaptive}Clipping
// share the defaults and the noise split; where they differ this file follows TFF (see DPFedAvg).
//
// One round, C the clipping norm, E the expected clients per round, K the clients that reported:
//   clip:    u_k <- u_k min(1, C / ||u_k||)              (factors from the K norms, applied on the GPU)
//   noise:   s = sum_k u_k + N(0, (z_sum C)^2 I)         (gaussianNoise, seeded per round)
//   average: global' = global + s / E
//   adapt:   b = clip01((#{k: ||u_k|| <= C} - K/2 + N(0, sigma_b^2)) / E + 1/2)
//            C' = C exp(-eta (b - gamma))               (only with adaptive clipping)
// The count query has sensitivity 1/2 (the shifted bit b_k - 1/2), so the two Gaussian queries
// compose to one of noise multiplier z with z^-2 = z_sum^-2 + (2 sigma_b)^-2: the accountant
// records z, the budget the user asked for, and the sum gets the larger z_sum.
//
// Under secure aggregation (distributed DP) the clients clip and noise: each of the E expected
// clients clips to C and adds N(0, (z C)^2 / E), so the sum of E of them carries the noise of one
// query of multiplier z; the server only averages and accounts (aggregateSum). Fewer clients carry
// less noise: a round of K < E is recorded at z sqrt(K / E). The accounting trusts each client to
// add its share. Adaptive clipping would also need the unclipped bits summed securely; it is
// refused there.
import { addScaledInPlace, axpy, clipToNorm, gaussianNoise, weightedSum } from '../../engine/ops/index.js';
import type { Tensor } from '../../engine/tensor.js';
import { DEFAULT_ORDERS, epsilonFromRdp, rdpSampledGaussian, RdpAccountant } from './accountant.js';
import { row, rowStatistics } from './checks.js';
import { Strategy, type StrategyState } from './strategies.js';

/** Seeds are below 2^52 so that the per-round seeds derived from them stay integers below 2^53. */
const SEED_LIMIT = 2 ** 52;

/**
 * A seed from the platform's cryptographic generator: the noise protects only while the Philox
 * key is unknown to whoever sees the result, so a default seed must not be predictable.
 */
function secureSeed(): number {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return (hi! >>> 12) * 2 ** 32 + lo!;
}

function checkSeed(op: string, seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0 || seed >= SEED_LIMIT) throw new Error(`${op}: seed ${seed} must be an integer in [0, 2^52)`);
}

export interface AdaptiveClipOptions {
  /** The clipping norm of the first round (default 0.1, TFF's and Flower's, after Andrew et al.). */
  initialClip?: number;
  /** gamma: the fraction of updates meant to be left unclipped, in (0, 1) (default 0.5). */
  targetQuantile?: number;
  /** eta of the geometric update (default 0.2). */
  learningRate?: number;
  /** sigma_b: the std of the noise on the count of unclipped updates (default E / 20 when noiseMultiplier > 0, else 0). */
  countStddev?: number;
}

export interface DPFedAvgOptions {
  /** z >= 0: the effective noise multiplier of a round, the one the accountant records. */
  noiseMultiplier: number;
  /** E > 0: the expected number of clients per round, the average's fixed denominator. */
  clientsPerRound: number;
  /** q in (0, 1]: the probability with which each client is sampled in a round (default 1: no amplification is claimed). */
  samplingProbability?: number;
  /** A fixed clipping norm C > 0 (give this or adaptive). */
  clipNorm?: number;
  /** Adaptive clipping (give this or clipNorm). */
  adaptive?: AdaptiveClipOptions;
  /** An integer in [0, 2^52) seeding every round's noise (round r uses seed + 2r and seed + 2r + 1); default: a cryptographically random one. */
  seed?: number;
  /** The accountant to record rounds into (default: a new one over DEFAULT_ORDERS). */
  accountant?: RdpAccountant;
}

/** What one round did, for logs and tests. */
export interface DPRoundRecord {
  /** The clipping norm the round's updates were clipped to. */
  clipNorm: number;
  /** K: the clients that reported. */
  clients: number;
  /** The clients whose update norm was at most clipNorm (exact, not released; NaN under secure aggregation, where the server sees no norms). */
  unclipped: number;
  /** b: the noised fraction that moved the clipping norm (adaptive clipping only; NaN otherwise). */
  noisedFraction: number;
  /** z_sum C: the std of the noise added to the sum (z C sqrt(K / E) under secure aggregation). */
  sumNoiseStd: number;
}

/** What each client does under secure aggregation: clip its delta to clipNorm, weigh it by 1 and add N(0, noiseStd^2) to every value it sends (privatizeLocally with noiseMultiplier noiseStd / clipNorm). */
export interface DistributedDpSettings {
  clipNorm: number;
  noiseStd: number;
}

/**
 * DP-FedAvg as a Strategy: each client delta is clipped to norm C, the clipped deltas are summed
 * with Gaussian noise of std z_sum C, and the sum is divided by the expected number of clients E
 * (TFF's NormalizedQuery; a fixed denominator keeps the average's sensitivity C / E whatever
 * number of clients reported, where dividing by the actual count, as Flower's inner FedAvg does,
 * would make the denominator itself data-dependent). Unweighted: example counts are ignored,
 * since weighting by them would let one client's weight raise its sensitivity. Every round is
 * recorded as (q, z) in the accountant.
 *
 * With adaptive clipping the noise of round t uses that round's C_t and the new norm is used from
 * the next round on (TF Privacy's QuantileAdaptiveClipSumQuery); Flower's server-side adaptive
 * wrapper instead updates C first and calibrates the round's noise to the new value. Updates must
 * be finite: run checkUpdates and aggregate acceptedStack's rows (a non-finite row is an error).
 */
export class DPFedAvg extends Strategy {
  readonly name = 'DPFedAvg';
  readonly noiseMultiplier: number;
  readonly clientsPerRound: number;
  readonly samplingProbability: number;
  /** z_sum: the noise multiplier of the sum, z itself with fixed clipping. */
  readonly sumNoiseMultiplier: number;
  /** sigma_b (0 with fixed clipping). */
  readonly countStddev: number;
  readonly adaptive: Readonly<Required<Omit<AdaptiveClipOptions, 'countStddev'>>> | null;
  readonly accountant: RdpAccountant;
  readonly seed: number;
  /** The last round's record; null before the first. */
  lastRound: DPRoundRecord | null = null;
  private clip: number;

  constructor(options: DPFedAvgOptions) {
    super();
    const op = 'DPFedAvg';
    const z = options.noiseMultiplier;
    const E = options.clientsPerRound;
    const q = options.samplingProbability ?? 1;
    if (!(z >= 0) || !Number.isFinite(z)) throw new Error(`${op}: noiseMultiplier ${z} must be a finite number >= 0`);
    if (!(E > 0) || !Number.isFinite(E)) throw new Error(`${op}: clientsPerRound ${E} must be a positive finite number`);
    if (!(q > 0 && q <= 1)) throw new Error(`${op}: samplingProbability ${q} must be in (0, 1]`);
    if ((options.clipNorm === undefined) === (options.adaptive === undefined)) {
      throw new Error(`${op}: give exactly one of clipNorm (fixed clipping) and adaptive (adaptive clipping)`);
    }
    this.noiseMultiplier = z;
    this.clientsPerRound = E;
    this.samplingProbability = q;
    this.seed = options.seed ?? secureSeed();
    checkSeed(op, this.seed);
    this.accountant = options.accountant ?? new RdpAccountant();
    if (options.adaptive) {
      const a = options.adaptive;
      const initialClip = a.initialClip ?? 0.1;
      const targetQuantile = a.targetQuantile ?? 0.5;
      const learningRate = a.learningRate ?? 0.2;
      if (!(initialClip > 0) || !Number.isFinite(initialClip)) throw new Error(`${op}: initialClip ${initialClip} must be a positive finite number`);
      // gamma = 0 or 1 has no finite fixed point: C would shrink to 0 or grow without bound.
      if (!(targetQuantile > 0 && targetQuantile < 1)) throw new Error(`${op}: targetQuantile ${targetQuantile} must be in (0, 1)`);
      if (!(learningRate > 0) || !Number.isFinite(learningRate)) throw new Error(`${op}: learningRate ${learningRate} must be a positive finite number`);
      const sigmaB = a.countStddev ?? (z > 0 ? E / 20 : 0);
      if (!(sigmaB >= 0) || !Number.isFinite(sigmaB)) throw new Error(`${op}: countStddev ${sigmaB} must be a finite number >= 0`);
      this.adaptive = { initialClip, targetQuantile, learningRate };
      this.countStddev = sigmaB;
      this.sumNoiseMultiplier = adaptiveSumNoiseMultiplier(z, sigmaB);
      this.clip = initialClip;
    } else {
      const C = options.clipNorm!;
      if (!(C > 0) || !Number.isFinite(C)) throw new Error(`${op}: clipNorm ${C} must be a positive finite number`);
      this.adaptive = null;
      this.countStddev = 0;
      this.sumNoiseMultiplier = z;
      this.clip = C;
    }
  }

  /** The clipping norm the next round will use. */
  get clipNorm(): number {
    return this.clip;
  }

  /** Adaptive clipping moves C by the count of unclipped updates, which needs each client's norm. */
  override get needsIndividualUpdates(): boolean {
    return this.adaptive !== null;
  }

  /** The clipping and noise each client applies this round under secure aggregation: C and z C / sqrt(E). */
  distributedDp(): DistributedDpSettings {
    if (this.adaptive) throw new Error(`${this.name}.distributedDp: adaptive clipping needs each client's norm, which secure aggregation hides; use a fixed clipNorm`);
    return { clipNorm: this.clip, noiseStd: (this.noiseMultiplier * this.clip) / Math.sqrt(this.clientsPerRound) };
  }

  override async saveState(): Promise<StrategyState> {
    return { ...(await super.saveState()), scalars: { clipNorm: this.clip }, accountant: this.accountant.state() };
  }

  /** The client-level epsilon, for this delta, of every round recorded in the accountant so far. */
  epsilon(delta: number): number {
    return this.accountant.epsilon(delta).epsilon;
  }

  protected async combine(global: Tensor, updates: Tensor): Promise<Tensor> {
    const engine = global.engine;
    const K = updates.shape[0]!;
    const P = updates.shape[1]!;
    const C = this.clip;
    const rows = Array.from({ length: K }, (_, k) => row(updates, k));
    const { norms } = await rowStatistics(engine, rows);
    for (const r of rows) r.dispose();
    const bad = [...norms.keys()].filter((k) => !Number.isFinite(norms[k]!));
    if (bad.length > 0) {
      throw new Error(`${this.name}.aggregate: updates ${updates.name} rows [${bad.join(', ')}] have norms [${bad.map((k) => norms[k]).join(', ')}]; reject them with checkUpdates and aggregate acceptedStack's rows`);
    }
    // Clipping and summing in one weighted sum: row k times min(1, C / ||u_k||).
    const sum = weightedSum(updates, Array.from(norms, (n) => (n > C ? C / n : 1)));
    const seed = this.seed + 2 * this.round;
    const sumNoiseStd = this.sumNoiseMultiplier * C;
    if (sumNoiseStd > 0) {
      const noise = gaussianNoise(engine, [P], { seed, std: sumNoiseStd });
      addScaledInPlace(sum, noise);
      noise.dispose();
    }
    const out = axpy(global, 1 / this.clientsPerRound, sum);
    sum.dispose();

    const unclipped = norms.reduce((n, v) => n + (v <= C ? 1 : 0), 0);
    let noisedFraction = NaN;
    if (this.adaptive) {
      let countNoise = 0;
      if (this.countStddev > 0) {
        const t = gaussianNoise(engine, [1], { seed: seed + 1, std: this.countStddev });
        countNoise = await t.item();
        t.dispose();
      }
      noisedFraction = adaptiveClipFraction(unclipped, K, countNoise, this.clientsPerRound);
      this.clip = C * Math.exp(-this.adaptive.learningRate * (noisedFraction - this.adaptive.targetQuantile));
    }
    this.lastRound = { clipNorm: C, clients: K, unclipped, noisedFraction, sumNoiseStd };
    this.accountant.step(this.samplingProbability, this.noiseMultiplier);
    return out;
  }

  /**
   * Distributed DP: `sum` is the sum of the clients' clipped deltas with their shares of the noise
   * (distributedDp()), so only the average over E and the accounting remain. Each client weighs
   * its delta by 1: totalWeight must equal clients.
   */
  protected override async combineSum(global: Tensor, sum: Tensor, totalWeight: number, clients: number): Promise<Tensor> {
    if (totalWeight !== clients) throw new Error(`${this.name}.aggregateSum: totalWeight ${totalWeight} for ${clients} clients; under DP each client weighs its clipped delta by 1`);
    const E = this.clientsPerRound;
    const out = axpy(global, 1 / E, sum);
    const z = this.noiseMultiplier;
    this.lastRound = { clipNorm: this.clip, clients, unclipped: NaN, noisedFraction: NaN, sumNoiseStd: z * this.clip * Math.sqrt(clients / E) };
    this.accountant.step(this.samplingProbability, z * Math.sqrt(Math.min(clients, E) / E));
    return out;
  }

  protected override stateNames(): { tensors: readonly string[]; scalars: readonly string[] } {
    return { tensors: [], scalars: ['clipNorm'] };
  }

  protected override restoreState(state: StrategyState): void {
    const op = `${this.name}.loadState`;
    const C = state.scalars.clipNorm!;
    if (!(C > 0) || !Number.isFinite(C)) throw new Error(`${op}: clipNorm ${C} must be a positive finite number`);
    if (!state.accountant) throw new Error(`${op}: the state has no accountant; DPFedAvg's rounds cannot be accounted for without it`);
    this.accountant.restore(state.accountant);
    this.clip = C;
    this.lastRound = null;
  }
}

/**
 * z_sum = (z^-2 - (2 sigma_b)^-2)^(-1/2): the sum's noise multiplier that, with the count's noise
 * sigma_b (sensitivity 1/2), spends the budget of one Gaussian query of multiplier z (TFF's
 * adaptive_clip_noise_params, Flower's compute_adaptive_noise_params); 0 when z is 0. Requires
 * z < 2 sigma_b, else the count alone would spend more than z allows.
 */
export function adaptiveSumNoiseMultiplier(z: number, countStddev: number): number {
  if (z === 0) return 0;
  if (!(z < 2 * countStddev)) {
    throw new Error(`DPFedAvg: noiseMultiplier ${z} needs countStddev > z / 2 = ${z / 2} (got ${countStddev}); raise countStddev (default clientsPerRound / 20) or lower noiseMultiplier`);
  }
  return (z ** -2 - (2 * countStddev) ** -2) ** -0.5;
}

/**
 * b = clip01((unclipped - K/2 + noise) / E + 1/2): TF Privacy's QuantileEstimatorQuery, which
 * sums the bits shifted by -1/2 (halving the sensitivity), normalises by the expected count E and
 * shifts back.
 */
export function adaptiveClipFraction(unclipped: number, clients: number, countNoise: number, expectedClients: number): number {
  return Math.min(1, Math.max(0, (unclipped - clients / 2 + countNoise) / expectedClients + 0.5));
}

export interface LocalDpOptions {
  /** C > 0: the client clips its delta to this norm first. */
  clipNorm: number;
  /** z > 0: the noise std is z C. */
  noiseMultiplier: number;
  /** An integer in [0, 2^53); default: a cryptographically random one. */
  seed?: number;
}

/**
 * Local DP, on the client before it sends: the delta clipped to norm C plus N(0, (z C)^2 I). The
 * server (and anyone who sees the report) learns about the client's data only through that
 * Gaussian mechanism; see localDpEpsilon for its guarantee. A new [P] tensor the caller owns.
 */
export function privatizeLocally(delta: Tensor, options: LocalDpOptions): Tensor {
  const op = 'privatizeLocally';
  const { clipNorm: C, noiseMultiplier: z } = options;
  if (!(C > 0) || !Number.isFinite(C)) throw new Error(`${op}: clipNorm ${C} must be a positive finite number`);
  if (!(z > 0) || !Number.isFinite(z)) throw new Error(`${op}: noiseMultiplier ${z} must be a positive finite number`);
  const seed = options.seed ?? secureSeed();
  const clipped = clipToNorm(delta, C);
  const noise = gaussianNoise(delta.engine, clipped.shape, { seed, std: z * C });
  addScaledInPlace(clipped, noise);
  noise.dispose();
  return clipped;
}

/**
 * The epsilon, for delta, of a client that sent `rounds` reports from privatizeLocally with noise
 * multiplier z, against everything anyone can see (no trust in the server). Adjacency is the
 * client's whole data set replaced by any other, so two clipped deltas differ by up to 2C: each
 * report is the Gaussian mechanism at multiplier z / 2, with no sampling amplification (the
 * client knows it took part), composed over the rounds in RDP.
 */
export function localDpEpsilon(noiseMultiplier: number, rounds: number, delta: number, orders: readonly number[] = DEFAULT_ORDERS): number {
  if (!(noiseMultiplier > 0)) throw new Error(`localDpEpsilon: noiseMultiplier ${noiseMultiplier} must be positive`);
  return epsilonFromRdp(orders, rdpSampledGaussian(1, noiseMultiplier / 2, rounds, orders), delta).epsilon;
}
