// What the federated server and its clients say to each other. Both sides exchange only these
// messages, so neither cares whether the other is in the same page (tensors handed over) or
// across a network (the same fields serialised; the next federated issue).
//
// Only what trains travels: a message carries the model's trainable parameters, by name, laid out
// one after another in a flat vector (each at a multiple of 64 elements, so that each is a
// bindable view; the gaps are zero and are not counted as bytes). A frozen base never moves after
// the first download; with LoRA, only the adapters do.
import type { Engine } from '../../engine/engine.js';
import type { AnyModule } from '../../engine/module.js';
import { aligned, type Parameter } from '../../engine/parameters.js';
import { shapeString, type Shape, type Tensor } from '../../engine/tensor.js';
import type { EncodedUpdate } from './compression.js';

/** FNV-1a (32 bits) of a string's UTF-16 code units or of bytes: stable ids for seeds, model versions and weight checks. */
export function fnv1a(data: string | Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) {
    h ^= typeof data === 'string' ? data.charCodeAt(i) : data[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** One trainable parameter's place in a message's flat vector. */
export interface PayloadEntry {
  readonly name: string;
  readonly shape: Shape;
  readonly size: number;
  /** First element in the flat vector (a multiple of 64). */
  readonly offset: number;
}

/** Which parameters a message carries, and where. */
export interface PayloadLayout {
  readonly entries: readonly PayloadEntry[];
  /** Elements of the flat vector, gaps included: the P of the server's [K, P] stacks. */
  readonly length: number;
  /** Values carried (the gaps left out): what bytes are counted from. */
  readonly values: number;
}

/** The settings of one round's local training, sent with the global weights. */
export interface RoundConfig {
  readonly round: number;
  /** E: local epochs over the client's data. */
  readonly epochs: number;
  /** B: local batch size. */
  readonly batchSize: number;
  /** The local optimizer's learning rate. */
  readonly learningRate: number;
  /** FedProx's mu (Li et al. 2020): local loss + mu/2 ||w - w_global||^2; 0 is plain FedAvg training. */
  readonly proximalMu: number;
  /** Seeds the round's local shuffles (each client mixes in its own seed). */
  readonly seed: number;
  /** Send the update 8-bit quantised (with error feedback kept on the client), or as f32. */
  readonly compression: { readonly bits: 8; readonly errorFeedback: boolean } | null;
}

/** Throws unless the round configuration is usable, naming the setting. */
export function checkRoundConfig(op: string, config: RoundConfig): void {
  const positive = (what: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${op}: ${what} ${v} must be a positive integer`);
  };
  if (!Number.isSafeInteger(config.round) || config.round < 0) throw new Error(`${op}: round ${config.round} must be an integer >= 0`);
  positive('epochs', config.epochs);
  positive('batchSize', config.batchSize);
  if (!(config.learningRate > 0) || !Number.isFinite(config.learningRate)) throw new Error(`${op}: learningRate ${config.learningRate} must be a positive finite number`);
  if (!(config.proximalMu >= 0) || !Number.isFinite(config.proximalMu)) throw new Error(`${op}: proximalMu ${config.proximalMu} must be a finite number >= 0`);
  if (!Number.isSafeInteger(config.seed) || config.seed < 0) throw new Error(`${op}: seed ${config.seed} must be an integer >= 0`);
  const c = config.compression;
  if (c !== null && (c?.bits !== 8 || typeof c.errorFeedback !== 'boolean')) {
    throw new Error(`${op}: compression ${JSON.stringify(c)} must be null or { bits: 8, errorFeedback: true | false }`);
  }
}

/** Server to client: the global trainable weights and how to train on them. */
export interface GlobalModel {
  readonly config: RoundConfig;
  readonly layout: PayloadLayout;
  /** [layout.length] */
  readonly weights: Tensor;
  /** What the message costs on the wire: 4 bytes per value. */
  readonly bytes: number;
}

/** What local training measured. */
export interface ClientMetrics {
  /** The mean training loss over the last local epoch. */
  readonly loss: number;
}

/** Client to server: the change of its trainable weights (local - global), f32 or encoded. */
export interface ClientUpdate {
  readonly clientId: string;
  readonly round: number;
  /** Training examples the update was made from (FedAvg's weight). */
  readonly examples: number;
  /** [layout.length], when sent as f32. */
  readonly delta: Tensor | null;
  /** The encoded delta, when sent compressed. */
  readonly encoded: EncodedUpdate | null;
  readonly metrics: ClientMetrics;
  /** What the update costs on the wire. */
  readonly bytes: number;
}

/** Frees an update's tensors (its receiver's job once it has been aggregated or given up). */
export function disposeUpdate(update: ClientUpdate): void {
  update.delta?.dispose();
  update.encoded?.codes.dispose();
  update.encoded?.scales.dispose();
}

/** A client's evaluation of the global model on its own held-out data. */
export interface ClientEvaluation {
  readonly clientId: string;
  readonly examples: number;
  /** Classification accuracy, or top-1 next-word recall. */
  readonly accuracy: number;
  /** Mean cross-entropy (for a text: the log of the perplexity). */
  readonly loss: number;
  /** Top-3 next-word recall (next-word models only). */
  readonly top3?: number;
}

/**
 * The layout of `model`'s trainable parameters, in the model's order. Models with buffers
 * (BatchNorm running statistics) are refused: averaging or keeping them local (FedBN) is a choice
 * this library does not make silently.
 */
export function trainableLayout(model: AnyModule): PayloadLayout {
  const buffers = [...model.buffers().keys()];
  if (buffers.length > 0) {
    throw new Error(`federated: the model has buffers (${buffers.join(', ')}); federating BatchNorm statistics is not supported, use LayerNorm or no normalisation`);
  }
  const entries: PayloadEntry[] = [];
  let offset = 0;
  for (const [name, p] of model.trainableParameters()) {
    entries.push({ name, shape: [...p.shape], size: p.size, offset });
    offset += aligned(p.size);
  }
  if (entries.length === 0) throw new Error(`federated: the model has no trainable parameters, so there is nothing to federate`);
  return { entries, length: offset, values: entries.reduce((s, e) => s + e.size, 0) };
}

/** Bytes of `values` f32 values. */
export function f32Bytes(values: number): number {
  return 4 * values;
}

/** Throws unless two layouts carry the same parameters at the same places. */
export function checkLayout(op: string, expected: PayloadLayout, got: PayloadLayout): void {
  const describe = (l: PayloadLayout) => l.entries.map((e) => `${e.name} ${shapeString(e.shape)}`).join(', ');
  const same = expected.length === got.length && expected.entries.length === got.entries.length && expected.entries.every((e, i) => {
    const g = got.entries[i]!;
    return g.name === e.name && g.offset === e.offset && g.shape.join() === e.shape.join();
  });
  if (!same) throw new Error(`${op}: the message carries ${describe(got)}; this model trains ${describe(expected)}`);
}

/** The model's parameters named by the layout, in its order (each checked against its entry). */
function parametersOf(op: string, model: AnyModule, layout: PayloadLayout): Parameter[] {
  const named = model.parameters();
  return layout.entries.map((e) => {
    const p = named.get(e.name);
    if (!p) throw new Error(`${op}: the model has no parameter ${e.name} (it has ${[...named.keys()].join(', ')})`);
    if (p.shape.join() !== e.shape.join()) throw new Error(`${op}: parameter ${e.name} is ${shapeString(p.shape)} here and ${shapeString(e.shape)} in the message`);
    return p;
  });
}

/** The weights of the parameters `layout` names, gathered into a new flat [layout.length] tensor (zeros in the gaps). */
export function gatherWeights(engine: Engine, model: AnyModule, layout: PayloadLayout, name = 'federated.weights'): Tensor {
  const params = parametersOf('gatherWeights', model, layout);
  const flat = engine.zeros([layout.length], name);
  layout.entries.forEach((e, i) => {
    const view = engine.view(flat, e.shape, `${name}.${e.name}`, e.offset);
    engine.copy(params[i]!, view);
    view.dispose();
  });
  return flat;
}

/** A copy of a flat [layout.length] vector with zeros in the gaps between its parameters (noise added to the whole vector also fell there). */
export function withoutGaps(engine: Engine, layout: PayloadLayout, flat: Tensor): Tensor {
  const op = 'withoutGaps';
  flat.assertAlive(op);
  if (flat.size !== layout.length) throw new Error(`${op}: ${flat.name} has ${flat.size} elements; the layout has ${layout.length}`);
  const out = engine.zeros([layout.length], flat.name);
  for (const e of layout.entries) {
    const from = engine.view(flat, [e.size], `${flat.name}.${e.name}`, e.offset);
    const to = engine.view(out, [e.size], `${out.name}.${e.name}`, e.offset);
    engine.copy(from, to);
    from.dispose();
    to.dispose();
  }
  return out;
}

/** Writes a flat [layout.length] vector into the parameters `layout` names. */
export function scatterWeights(engine: Engine, model: AnyModule, layout: PayloadLayout, flat: Tensor): void {
  const op = 'scatterWeights';
  flat.assertAlive(op);
  if (flat.size !== layout.length) throw new Error(`${op}: ${flat.name} has ${flat.size} elements; the layout has ${layout.length}`);
  const params = parametersOf(op, model, layout);
  layout.entries.forEach((e, i) => {
    const view = engine.view(flat, e.shape, `${flat.name}.${e.name}`, e.offset);
    engine.copy(view, params[i]!);
    view.dispose();
  });
}
