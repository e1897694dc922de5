// A federated client: its data never leaves it. It receives the global trainable weights and a
// round configuration, trains locally for E epochs at batch B with an optimizer of its own (made
// fresh each round, as Flower's clients do, so no optimizer state outlives a round), and answers
// with the change of its trainable weights, its example count and its training loss. It also
// evaluates a global model on its own held-out data and fine-tunes a personal head (FedPer /
// FedRep). Simulated clients may share one model object (the device they would each run on):
// every call first loads the weights it was sent. A client holds either labelled examples (a
// classifier) or a text as token ids (a next-word model, KeyboardModel: B parallel streams of T
// tokens per step with truncated BPTT, B the round's batch size).
import { backward } from '../../engine/autograd.js';
import type { Engine } from '../../engine/engine.js';
import type { Module } from '../../engine/module.js';
import { addScaledInPlace, softmaxCrossEntropy, sub } from '../../engine/ops/index.js';
import { SGD, type Optimizer } from '../../engine/optim.js';
import type { Parameter } from '../../engine/parameters.js';
import type { Tensor } from '../../engine/tensor.js';
import { evaluateLanguageModel, trainLanguageModel } from '../keyboard/train.js';
import { KeyboardModel } from '../keyboard/model.js';
import { evaluate, fit, oneHot, takeRows, train, type ClassificationData, type Dataset } from '../train.js';
import { poisonDelta, type Attack } from './attacks.js';
import { UpdateCompressor, type EncodedUpdate } from './compression.js';
import { privatizeLocally, type LocalDpOptions } from './privacy.js';
import { checkLayout, checkRoundConfig, f32Bytes, fnv1a, gatherWeights, scatterWeights, trainableLayout, withoutGaps, type ClientEvaluation, type ClientUpdate, type GlobalModel, type PayloadLayout, type RoundConfig } from './protocol.js';

/** A client's text as token ids, for a next-word model (KeyboardModel). */
export interface TokenData {
  readonly tokens: Uint32Array;
  /** T: tokens per stream per step, the truncation of backpropagation through time. */
  readonly steps: number;
  /** Parallel streams when evaluating (training uses the round's batch size). */
  readonly streams: number;
  /** Target ids not scored (markers: unknown, begin, end, number). */
  readonly exclude: readonly number[];
}

export type ClientData = ClassificationData | TokenData;

/** Whether a client's data are a text (token ids) rather than labelled examples. */
export function isTokens(data: ClientData): data is TokenData {
  return 'tokens' in data;
}

export interface ClientOptions {
  id: string;
  /** The model trained on (simulated clients may share one: each call loads the weights it is sent); a KeyboardModel for token data. */
  model: Module;
  /** The client's training data. */
  data: ClientData;
  /** Its held-out data (of the same kind), for federated evaluation and personalisation. */
  test?: ClientData;
  /** Mixed into every round's shuffle seed and compression seed (default: a hash of id). */
  seed?: number;
  /** The local optimizer, made each round over the model (default SGD at the round's learning rate, as McMahan et al.). */
  optimizer?: (model: Module, config: RoundConfig) => Optimizer;
  /** Local differential privacy: the delta is clipped and noised before it leaves the client. */
  localDp?: LocalDpOptions;
  /** A poisoned client (experiments and tests): sends this attack's delta instead of its own. */
  attack?: Attack;
}

/** The seed of a client's local shuffles in one round (epoch e shuffles with it + e, as train() does). */
export function localSeed(config: RoundConfig, clientSeed: number): number {
  return (Math.imul(config.seed >>> 0, 0x9e3779b1) ^ clientSeed) >>> 1;
}

/** Adds FedProx's proximal gradient mu (w - w_global) to each parameter's gradient (w_global: views of the global weights). */
export function addProximalGradient(params: readonly Parameter[], global: readonly Tensor[], mu: number): void {
  params.forEach((p, i) => {
    if (!p.hasGradient) return;
    const grad = p.gradView();
    addScaledInPlace(grad, p, mu);
    addScaledInPlace(grad, global[i]!, -mu);
  });
}

export class FederatedClient {
  readonly id: string;
  readonly model: Module;
  readonly data: ClientData;
  readonly test: ClientData | null;
  readonly seed: number;
  readonly attack: Attack | null;
  private readonly options: ClientOptions;
  private compressor: UpdateCompressor | null = null;

  constructor(options: ClientOptions) {
    if (!options.id) throw new Error('FederatedClient: id must be a non-empty string');
    const op = `FederatedClient ${options.id}`;
    if (isTokens(options.data)) {
      if (!(options.model instanceof KeyboardModel)) throw new Error(`${op}: token data needs a KeyboardModel, got ${options.model.constructor.name}`);
      if (options.test && !isTokens(options.test)) throw new Error(`${op}: its training data are tokens but its test data are labelled examples`);
      if (options.data.tokens.length < 2) throw new Error(`${op}: it has ${options.data.tokens.length} tokens; at least 2 are needed (an input and its next word)`);
    } else if (options.data.count < 1) throw new Error(`${op}: it has no training data`);
    this.id = options.id;
    this.model = options.model;
    this.data = options.data;
    this.test = options.test ?? null;
    // A stable default seed per client id.
    this.seed = options.seed ?? fnv1a(options.id);
    this.attack = options.attack ?? null;
    this.options = options;
  }

  /** Whether the client trains with an optimizer of its own rather than the default SGD. */
  get ownOptimizer(): boolean {
    return this.options.optimizer !== undefined;
  }

  /** Training examples this client holds (FedAvg's weight): labelled rows, or next-word targets. */
  get examples(): number {
    return isTokens(this.data) ? this.data.tokens.length - 1 : this.data.count;
  }

  /** Local steps a round of `config` takes: full batches only, as train() (at least one batch of data needed); windows of T for tokens. */
  steps(config: RoundConfig): number {
    if (!isTokens(this.data)) return config.epochs * Math.floor(this.data.count / config.batchSize);
    const length = Math.floor(this.data.tokens.length / config.batchSize);
    return config.epochs * Math.ceil((length - 1) / this.data.steps);
  }

  /**
   * One round of local training from the global weights in `message`. The update's tensors belong
   * to whoever receives it (the server frees them after aggregating).
   */
  async fit(engine: Engine, message: GlobalModel): Promise<ClientUpdate> {
    const op = `FederatedClient ${this.id}: fit`;
    const { config, layout } = message;
    checkRoundConfig(op, config);
    if (this.steps(config) < 1) throw new Error(`${op}: batch size ${config.batchSize} is larger than its ${this.examples} examples`);
    this.load(engine, op, message);
    const optimizer = this.options.optimizer?.(this.model, config) ?? new SGD(this.model, { lr: config.learningRate });
    const params = layout.entries.map((e) => this.model.parameters().get(e.name)!);
    const global = layout.entries.map((e) => engine.view(message.weights, e.shape, `global.${e.name}`, e.offset));
    const proximal = config.proximalMu > 0 ? () => addProximalGradient(params, global, config.proximalMu) : undefined;
    try {
      const loss = isTokens(this.data) ? await this.trainTokens(engine, optimizer, config, this.data, proximal) : await this.trainExamples(engine, optimizer, config, this.data, proximal);
      return this.answer(engine, message, gatherWeights(engine, this.model, layout, `client ${this.id}.weights`), loss);
    } finally {
      optimizer.dispose();
      for (const g of global) g.dispose();
    }
  }

  /** One round on labelled examples; the mean training loss over the round's steps. */
  private async trainExamples(engine: Engine, optimizer: Optimizer, config: RoundConfig, data: ClassificationData, afterBackward: (() => void) | undefined): Promise<number> {
    const lossSum = engine.keep(engine.zeros([], `client ${this.id}.lossSum`));
    try {
      const x = new Float32Array(config.batchSize * data.features);
      const targets = new Float32Array(config.batchSize * data.classes);
      const rows: Dataset<Uint32Array> = { count: data.count, batch: (indices) => indices };
      await train(engine, this.model, optimizer, rows, {
        epochs: config.epochs,
        batchSize: config.batchSize,
        seed: localSeed(config, this.seed),
        logEvery: this.steps(config),
        step: (indices, { engine: e }) => {
          takeRows(data.inputs, data.features, indices, x);
          oneHot(Array.from(indices, (i) => data.labels[i]!), data.classes, targets);
          const loss = softmaxCrossEntropy(this.model.forward(e.tensor(x, [indices.length, data.features], 'client.inputs')), e.tensor(targets, [indices.length, data.classes], 'client.targets'));
          addScaledInPlace(lossSum, loss);
          backward(loss);
          afterBackward?.();
          return {};
        },
      });
      return (await lossSum.item()) / this.steps(config);
    } finally {
      lossSum.dispose();
    }
  }

  /** One round on a text: E epochs of truncated BPTT over B streams; the mean loss over the last epoch. */
  private async trainTokens(engine: Engine, optimizer: Optimizer, config: RoundConfig, data: TokenData, afterBackward: (() => void) | undefined): Promise<number> {
    const result = await trainLanguageModel(engine, this.model as KeyboardModel, optimizer, data.tokens, { batchSize: config.batchSize, steps: data.steps, epochs: config.epochs, logEvery: Number.MAX_SAFE_INTEGER, afterBackward });
    return result.lastEpochLoss;
  }

  /**
   * The update from the trainable weights after local training (`local`, laid out as the message;
   * freed here): delta = local - global, then the attack (a poisoned client), local DP and
   * compression, in that order.
   */
  answer(engine: Engine, message: GlobalModel, local: Tensor, loss: number): ClientUpdate {
    const { config, layout } = message;
    let delta = sub(local, message.weights);
    local.dispose();
    const replace = (next: () => Tensor) => {
      let made: Tensor;
      try {
        made = next();
      } catch (e) {
        delta.dispose();
        throw e;
      }
      delta.dispose();
      delta = made;
    };
    if (this.attack) replace(() => poisonDelta(delta, this.attack!, localSeed(config, this.seed) + 1));
    if (this.options.localDp) replace(() => privatizeLocally(delta, { ...this.options.localDp!, seed: this.options.localDp!.seed ?? localSeed(config, this.seed) + 2 }));
    // Noise (local DP, the noise attack) covers the whole vector: the gaps between parameters must stay zero, so that norms count only what is sent.
    if (this.options.localDp || this.attack?.kind === 'noise') replace(() => withoutGaps(engine, layout, delta));
    const base = { clientId: this.id, round: config.round, examples: this.examples, metrics: { loss } };
    if (!config.compression) return { ...base, delta: engine.keep(delta), encoded: null, bytes: f32Bytes(layout.values) };
    this.compressor ??= new UpdateCompressor({ seed: this.seed, errorFeedback: config.compression.errorFeedback });
    let encoded: EncodedUpdate;
    try {
      encoded = this.compressor.encode(delta);
    } finally {
      delta.dispose();
    }
    engine.keep(encoded.codes);
    engine.keep(encoded.scales);
    return { ...base, delta: null, encoded, bytes: encoded.bytes };
  }

  /** Accuracy and loss of the global model in `message` on this client's held-out data (top-1 recall and log-perplexity for a text). */
  async evaluate(engine: Engine, message: GlobalModel): Promise<ClientEvaluation> {
    const op = `FederatedClient ${this.id}: evaluate`;
    if (!this.test) throw new Error(`${op}: the client has no test data`);
    this.load(engine, op, message);
    return { clientId: this.id, ...(await this.score(engine, this.test)) };
  }

  /** The model as it is on held-out data. */
  private async score(engine: Engine, test: ClientData): Promise<Omit<ClientEvaluation, 'clientId'>> {
    if (!isTokens(test)) return { examples: test.count, ...(await evaluate(engine, this.model, test)) };
    const r = await evaluateLanguageModel(engine, this.model as KeyboardModel, test.tokens, test);
    return { examples: r.targets, accuracy: r.top1, loss: Math.log(r.perplexity), top3: r.top3 };
  }

  /**
   * Personalisation (FedPer / FedRep): from the global model, trains only the parameters whose
   * names start with one of `head` on the client's own data (the rest frozen for the while), and
   * reports the global and the personalised accuracy on its held-out data. The model's frozen flags
   * are restored afterwards; its weights are left personalised.
   */
  async personalise(engine: Engine, message: GlobalModel, options: { head: readonly string[]; epochs: number; batchSize: number; learningRate: number }): Promise<{ clientId: string; global: number; personalised: number }> {
    const op = `FederatedClient ${this.id}: personalise`;
    const test = this.test;
    if (!test) throw new Error(`${op}: the client has no test data`);
    const global = await this.evaluate(engine, message);
    const named = this.model.parameters();
    const inHead = (name: string) => options.head.some((h) => name === h || name.startsWith(`${h}.`));
    const head = [...named].filter(([name]) => inHead(name));
    if (head.length === 0) throw new Error(`${op}: no parameter is in the head ${options.head.join(', ')} (parameters: ${[...named.keys()].join(', ')})`);
    const wasFrozen = new Map([...named.values()].map((p) => [p, p.frozen] as const));
    for (const [name, p] of named) {
      if (inHead(name)) p.unfreeze();
      else p.freeze();
    }
    const optimizer = new SGD(head.map(([, p]) => p), { lr: options.learningRate });
    try {
      const data = this.data;
      if (isTokens(data)) await trainLanguageModel(engine, this.model as KeyboardModel, optimizer, data.tokens, { batchSize: Math.min(options.batchSize, Math.floor(data.tokens.length / 2)), steps: data.steps, epochs: options.epochs, logEvery: Number.MAX_SAFE_INTEGER });
      else await fit(engine, this.model, optimizer, data, { epochs: options.epochs, batchSize: Math.min(options.batchSize, data.count), seed: this.seed, logEvery: 1_000_000 });
    } finally {
      optimizer.dispose();
      for (const [p, frozen] of wasFrozen) if (frozen) p.freeze();
      else p.unfreeze();
    }
    const after = await this.score(engine, test);
    return { clientId: this.id, global: global.accuracy, personalised: after.accuracy };
  }

  /** Loads the message's weights into the model, after checking they are the ones it trains. */
  load(engine: Engine, op: string, message: GlobalModel): PayloadLayout {
    checkLayout(op, trainableLayout(this.model), message.layout);
    scatterWeights(engine, this.model, message.layout, message.weights);
    return message.layout;
  }

  /** Frees the compressor's error-feedback residual. */
  dispose(): void {
    this.compressor?.dispose();
    this.compressor = null;
  }
}
