// The federated wire format: every message between a coordinator and its clients as one
// versioned binary frame, for a WebSocket or any other byte transport, in browsers and Node.
//
// A frame is a safetensors file (src/engine/io/safetensors.ts), whole:
//
//   offset 0      u64 little-endian N: the length of the header
//   offset 8      N bytes of UTF-8 JSON, padded with spaces to a multiple of 8, which always begins
//                   {"__metadata__":{"wire":"webgpu-train.federated","version":"1","type":"round",
//                 then the message's scalar fields (strings, as safetensors requires) and then an
//                 entry per array:  "weights/fc.weight":{"dtype":"F32","shape":[784,200],"data_offsets":[0,627200]}
//   offset 8 + N  the arrays' bytes, little-endian, one after another in header order, and nothing else
//
// A whole safetensors file rather than a prefix of our own followed by one: a captured frame then
// opens as it is in any safetensors reader (Python's safe_open, or a JSON parser after 8 bytes),
// with nothing to know or cut off first. The magic and the version still sit at a fixed place,
// offset 8, since the encoder writes __metadata__ first with "wire" and "version" as its first
// fields: a decoder refuses other bytes, and names a version it does not speak, before parsing any
// JSON. Later versions keep these first bytes whatever else they change.
//
// Fields, by message type (metadata keys; arrays as tensors):
//   hello       clientId, token, model, capabilities (JSON list of strings)
//   welcome     clientId, capabilities
//   error       reason
//   round       modelVersion, config (RoundConfig as JSON; its round is the round's number),
//               secure aggregation parameters as in secagg (optional); weights/<parameter> F32
//   update      round, modelVersion, examples, loss, delta ("f32" | "q8"), blockSize (q8);
//               f32: delta/<parameter> F32; q8: q8/codes U8 [n] (one code per element), q8/scales F32 [blocks, 2]
//   evaluate    round, modelVersion; weights/<parameter> F32
//   evaluation  round, modelVersion, examples, metric.<name>
//   secagg      round, stage, secagg.number.<name>, secagg.string.<name>; secagg/<name> U8 [bytes]
//   bye         nothing
// Integers are written in decimal; measurements (loss, metrics) as JavaScript prints them (-0 as
// "-0"), which reads back to the same double, NaN and +-Infinity included (a diverged client says
// so); secure aggregation's numbers must be finite. An update names no client: its sender is the
// connection the coordinator authenticated, and a second claim inside the frame could only disagree.
//
// Decoding is strict and all-or-nothing: a frame over the size limit, with another magic, another
// version, an unknown type, a field missing, ill-formed or unexpected, a tensor of the wrong dtype,
// a byte length that does not match its shape, a header over its limit or bytes that belong to no
// tensor is refused with an Error that says which; no partial message is ever returned.
import { decodeTypedSafetensors, encodeSafetensors, type NamedArray, type TensorData } from '../../engine/io/safetensors.js';
import { checkQuantizeSizes, quantizedBlocks } from '../../engine/ops/quantize.js';
import { checkRoundConfig, type PayloadLayout, type RoundConfig } from './protocol.js';

export const WIRE_FORMAT = 'webgpu-train.federated';
/** The version this side writes. */
export const WIRE_VERSION = 1;
/** The versions this side reads. */
export const WIRE_VERSIONS: readonly number[] = [WIRE_VERSION];
/** Frames above this are refused unless decodeFrame is given another limit: 256 MiB, a 64M-parameter model in f32. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 2 ** 20;
/** Headers above this are refused: 1 MiB, thousands of named arrays. */
export const DEFAULT_MAX_HEADER_BYTES = 2 ** 20;

/** The first bytes of every frame's header (after the 8-byte length). */
const MAGIC = new TextEncoder().encode(`{"__metadata__":{"wire":"${WIRE_FORMAT}","version":"`);

/** F32 arrays by parameter name, in the model's order (see namedFromFlat, flatFromNamed). */
export type NamedTensors = ReadonlyMap<string, NamedArray>;

/** Secure aggregation's fields: byte strings, numbers and strings by name (secagg.ts's messages ride in these). */
export type SecAggFields = Readonly<Record<string, Uint8Array | number | string>>;

/** Client to coordinator, first: who it is and what it can do. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly clientId: string;
  /** The token enrolment issued (send frames over TLS: a captured hello holds it). */
  readonly token: string;
  /** The model the client runs, as the coordinator names it. */
  readonly model: string;
  readonly capabilities: readonly string[];
}

/** Coordinator to client: admitted, and what the coordinator can do. */
export interface WelcomeMessage {
  readonly type: 'welcome';
  readonly clientId: string;
  readonly capabilities: readonly string[];
}

export interface ErrorMessage {
  readonly type: 'error';
  readonly reason: string;
}

/** Coordinator to client: train on these weights. */
export interface RoundMessage {
  readonly type: 'round';
  readonly modelVersion: number;
  /** Its `round` is the round's number. */
  readonly config: RoundConfig;
  readonly weights: NamedTensors;
  /** Secure aggregation's parameters for the round, or null without it. */
  readonly secagg: SecAggFields | null;
}

/** A client's delta (local - global): f32 by parameter name, or 8-bit encoded over the flat vector (compression.ts). */
export type UpdateDelta =
  | { readonly kind: 'f32'; readonly tensors: NamedTensors }
  | {
      readonly kind: 'q8';
      readonly blockSize: number;
      /** One code per element of the flat [n] vector: the bytes of quantize8's code words without their padding. */
      readonly codes: Uint8Array;
      /** [blocks * 2]: (lo, step) per block. */
      readonly scales: Float32Array;
    };

/** Client to coordinator: the result of a round's local training. */
export interface UpdateMessage {
  readonly type: 'update';
  readonly round: number;
  readonly modelVersion: number;
  readonly examples: number;
  /** Mean training loss over the last local epoch. */
  readonly loss: number;
  readonly delta: UpdateDelta;
}

/** Coordinator to client: evaluate these weights on your own held-out data. */
export interface EvaluateMessage {
  readonly type: 'evaluate';
  readonly round: number;
  readonly modelVersion: number;
  readonly weights: NamedTensors;
}

export interface EvaluationMessage {
  readonly type: 'evaluation';
  readonly round: number;
  readonly modelVersion: number;
  readonly examples: number;
  readonly metrics: Readonly<Record<string, number>>;
}

/** One step of secure aggregation, either way. */
export interface SecAggMessage {
  readonly type: 'secagg';
  readonly round: number;
  readonly stage: string;
  readonly fields: SecAggFields;
}

export interface ByeMessage {
  readonly type: 'bye';
}

export type WireMessage =
  | HelloMessage
  | WelcomeMessage
  | ErrorMessage
  | RoundMessage
  | UpdateMessage
  | EvaluateMessage
  | EvaluationMessage
  | SecAggMessage
  | ByeMessage;

export type WireMessageType = WireMessage['type'];

export interface DecodeOptions {
  /** Refuse frames longer than this (default DEFAULT_MAX_FRAME_BYTES). */
  maxBytes?: number;
  /** Refuse headers longer than this (default DEFAULT_MAX_HEADER_BYTES). */
  maxHeaderBytes?: number;
}

const INTEGER = /^(0|[1-9][0-9]*)$/;
const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?(e[+-][0-9]+)?$/;
const NON_FINITE = new Set(['NaN', 'Infinity', '-Infinity']);

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  const kind = typeof value === 'object' ? (value.constructor?.name ?? 'Object') : typeof value;
  return kind === 'Object' ? 'an object' : `a ${kind}`;
}

/** The shortest text that reads back as the same double (String(-0) is "0"). */
function numberText(value: number): string {
  return Object.is(value, -0) ? '-0' : String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** RoundConfig's fields and what each holds; a field added to RoundConfig must be added here. */
const ROUND_CONFIG_FIELDS: Record<keyof RoundConfig, 'number' | 'compression'> = {
  round: 'number',
  epochs: 'number',
  batchSize: 'number',
  learningRate: 'number',
  proximalMu: 'number',
  seed: 'number',
  compression: 'compression',
};

/** A RoundConfig with exactly its fields, checked (a copy: nothing else the object holds travels). */
function roundConfig(op: string, value: unknown): RoundConfig {
  if (!isRecord(value)) throw new Error(`${op}: config is ${show(value)}, not an object`);
  const unknown = Object.keys(value).filter((k) => !Object.hasOwn(ROUND_CONFIG_FIELDS, k));
  if (unknown.length > 0) throw new Error(`${op}: config has unknown fields ${unknown.join(', ')}`);
  for (const [k, kind] of Object.entries(ROUND_CONFIG_FIELDS)) {
    if (!Object.hasOwn(value, k)) throw new Error(`${op}: config lacks ${k}`);
    if (kind === 'number' && typeof value[k] !== 'number') throw new Error(`${op}: config ${k} is ${show(value[k])}, not a number`);
  }
  const config = value as unknown as RoundConfig;
  checkRoundConfig(`${op}: config`, config);
  const c = config.compression;
  return {
    round: config.round,
    epochs: config.epochs,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    proximalMu: config.proximalMu,
    seed: config.seed,
    compression: c === null ? null : { bits: c.bits, errorFeedback: c.errorFeedback },
  };
}

/** Builds a frame's metadata and tensors, refusing what could not be read back as the same message. */
class FrameWriter {
  readonly metadata: Record<string, string>;
  readonly tensors = new Map<string, NamedArray<TensorData>>();

  constructor(
    readonly op: string,
    type: WireMessageType,
  ) {
    this.metadata = { wire: WIRE_FORMAT, version: String(WIRE_VERSION), type };
  }

  string(key: string, value: unknown, { empty = false } = {}): void {
    if (typeof value !== 'string' || (!empty && value === '')) throw new Error(`${this.op}: ${key} is ${show(value)}, not a ${empty ? '' : 'non-empty '}string`);
    this.metadata[key] = value;
  }

  count(key: string, value: unknown): void {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Error(`${this.op}: ${key} is ${show(value)}, not an integer >= 0`);
    this.metadata[key] = String(value);
  }

  /** A measurement: any number, NaN and infinities included. */
  measure(key: string, value: unknown): void {
    if (typeof value !== 'number') throw new Error(`${this.op}: ${key} is ${show(value)}, not a number`);
    this.metadata[key] = numberText(value);
  }

  finite(key: string, value: unknown): void {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${this.op}: ${key} is ${show(value)}, not a finite number`);
    this.metadata[key] = numberText(value);
  }

  strings(key: string, value: unknown): void {
    if (!Array.isArray(value) || !value.every((s) => typeof s === 'string')) throw new Error(`${this.op}: ${key} is ${show(value)}, not an array of strings`);
    this.metadata[key] = JSON.stringify(value);
  }

  tensor(name: string, data: unknown, type: typeof Float32Array | typeof Uint8Array, shape: number[]): void {
    if (!(data instanceof type)) throw new Error(`${this.op}: ${name} is ${show(data)}, not a ${type.name}`);
    this.tensors.set(name, { shape, data });
  }

  /** F32 tensors by name under `prefix/`; at least one. */
  named(prefix: string, tensors: unknown): void {
    if (!(tensors instanceof Map) || tensors.size === 0) throw new Error(`${this.op}: ${prefix} is ${show(tensors)}, not a Map of at least one named tensor`);
    for (const [name, t] of tensors as Map<unknown, unknown>) {
      if (typeof name !== 'string' || name === '') throw new Error(`${this.op}: ${prefix} has a tensor named ${show(name)}; names are non-empty strings`);
      if (!isRecord(t) || !Array.isArray(t.shape)) throw new Error(`${this.op}: ${prefix}/${name} is ${show(t)}, not { shape, data }`);
      this.tensor(`${prefix}/${name}`, t.data, Float32Array, t.shape as number[]);
    }
  }

  secagg(fields: unknown): void {
    if (!isRecord(fields)) throw new Error(`${this.op}: secure aggregation fields are ${show(fields)}, not an object`);
    for (const [name, v] of Object.entries(fields)) {
      if (name === '') throw new Error(`${this.op}: a secure aggregation field has an empty name`);
      if (v instanceof Uint8Array) this.tensor(`secagg/${name}`, v, Uint8Array, [v.length]);
      else if (typeof v === 'number') this.finite(`secagg.number.${name}`, v);
      else if (typeof v === 'string') this.string(`secagg.string.${name}`, v, { empty: true });
      else throw new Error(`${this.op}: secure aggregation field ${name} is ${show(v)}, not a Uint8Array, number or string`);
    }
  }
}

/** Reads a decoded frame's fields, each at most once, and refuses a frame with fields left over. */
class FrameReader {
  private readonly unreadMetadata: Set<string>;
  private readonly unreadTensors: Set<string>;

  constructor(
    readonly op: string,
    private readonly metadata: Record<string, string>,
    private readonly tensors: Map<string, NamedArray<TensorData>>,
  ) {
    this.unreadMetadata = new Set(Object.keys(metadata));
    this.unreadTensors = new Set(tensors.keys());
  }

  private take(key: string): string {
    if (!Object.hasOwn(this.metadata, key)) throw new Error(`${this.op}: field ${key} is missing`);
    this.unreadMetadata.delete(key);
    return this.metadata[key]!;
  }

  has(key: string): boolean {
    return Object.hasOwn(this.metadata, key);
  }

  string(key: string, { empty = false } = {}): string {
    const s = this.take(key);
    if (!empty && s === '') throw new Error(`${this.op}: field ${key} is empty`);
    return s;
  }

  count(key: string): number {
    const s = this.take(key);
    if (!INTEGER.test(s) || !Number.isSafeInteger(Number(s))) throw new Error(`${this.op}: field ${key} is ${show(s)}, not an integer >= 0`);
    return Number(s);
  }

  measure(key: string): number {
    const s = this.take(key);
    if (!DECIMAL.test(s) && !NON_FINITE.has(s)) throw new Error(`${this.op}: field ${key} is ${show(s)}, not a number`);
    return Number(s);
  }

  finite(key: string): number {
    const s = this.take(key);
    if (!DECIMAL.test(s) || !Number.isFinite(Number(s))) throw new Error(`${this.op}: field ${key} is ${show(s)}, not a finite number`);
    return Number(s);
  }

  json(key: string): unknown {
    const s = this.take(key);
    try {
      return JSON.parse(s);
    } catch {
      throw new Error(`${this.op}: field ${key} is not valid JSON`);
    }
  }

  strings(key: string): string[] {
    const v = this.json(key);
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`${this.op}: field ${key} is not a JSON array of strings`);
    return v;
  }

  /** Keys under `prefix` (the prefix cut off), taken. */
  keysUnder(prefix: string): string[] {
    const keys = [...this.unreadMetadata].filter((k) => k.startsWith(prefix));
    for (const k of keys) this.unreadMetadata.delete(k);
    return keys.map((k) => k.slice(prefix.length));
  }

  tensor<T extends typeof Float32Array | typeof Uint8Array>(name: string, type: T, rank: number): { shape: number[]; data: InstanceType<T> } {
    const t = this.tensors.get(name);
    if (t === undefined) throw new Error(`${this.op}: tensor ${name} is missing`);
    this.unreadTensors.delete(name);
    if (!(t.data instanceof type)) throw new Error(`${this.op}: tensor ${name} is ${t.data.constructor.name}, not ${type.name}`);
    if (t.shape.length !== rank) throw new Error(`${this.op}: tensor ${name} has shape [${t.shape.join(',')}], not rank ${rank}`);
    return t as { shape: number[]; data: InstanceType<T> };
  }

  /** F32 tensors under `prefix/`, by name (in frame order); at least one. */
  named(prefix: string): NamedTensors {
    const out = new Map<string, NamedArray>();
    for (const name of [...this.unreadTensors].filter((n) => n.startsWith(`${prefix}/`))) {
      const t = this.tensors.get(name)!;
      if (!(t.data instanceof Float32Array)) throw new Error(`${this.op}: tensor ${name} is ${t.data.constructor.name}, not Float32Array`);
      this.unreadTensors.delete(name);
      out.set(name.slice(prefix.length + 1), { shape: t.shape, data: t.data });
    }
    if (out.size === 0) throw new Error(`${this.op}: no ${prefix}/ tensors`);
    return out;
  }

  secagg(): Record<string, Uint8Array | number | string> {
    const fields: [string, Uint8Array | number | string][] = [];
    for (const name of this.keysUnder('secagg.number.')) fields.push([name, this.finite(`secagg.number.${name}`)]);
    for (const name of this.keysUnder('secagg.string.')) fields.push([name, this.metadata[`secagg.string.${name}`]!]);
    for (const name of [...this.unreadTensors].filter((n) => n.startsWith('secagg/'))) fields.push([name.slice(7), this.tensor(name, Uint8Array, 1).data]);
    const names = fields.map(([n]) => n);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new Error(`${this.op}: secure aggregation field ${twice} appears twice`);
    if (names.includes('')) throw new Error(`${this.op}: a secure aggregation field has an empty name`);
    return Object.fromEntries(fields); // defines every name as an own property, "__proto__" too
  }

  /** Throws if the frame holds fields the message type does not have. */
  done(): void {
    const extra = [...this.unreadMetadata, ...[...this.unreadTensors].map((n) => `tensor ${n}`)];
    if (extra.length > 0) throw new Error(`${this.op}: unexpected fields ${extra.join(', ')}`);
  }
}

interface Codec<M extends WireMessage> {
  write(message: M, w: FrameWriter): void;
  read(r: FrameReader): M;
}

/** One entry per message type: a type without its codec does not compile. */
const CODECS: { [T in WireMessageType]: Codec<Extract<WireMessage, { type: T }>> } = {
  hello: {
    write: (m, w) => {
      w.string('clientId', m.clientId);
      w.string('token', m.token);
      w.string('model', m.model);
      w.strings('capabilities', m.capabilities);
    },
    read: (r) => ({ type: 'hello', clientId: r.string('clientId'), token: r.string('token'), model: r.string('model'), capabilities: r.strings('capabilities') }),
  },
  welcome: {
    write: (m, w) => {
      w.string('clientId', m.clientId);
      w.strings('capabilities', m.capabilities);
    },
    read: (r) => ({ type: 'welcome', clientId: r.string('clientId'), capabilities: r.strings('capabilities') }),
  },
  error: {
    write: (m, w) => w.string('reason', m.reason),
    read: (r) => ({ type: 'error', reason: r.string('reason') }),
  },
  round: {
    write: (m, w) => {
      w.count('modelVersion', m.modelVersion);
      w.metadata.config = JSON.stringify(roundConfig(w.op, m.config));
      w.named('weights', m.weights);
      if (m.secagg !== null) {
        if (!isRecord(m.secagg) || Object.keys(m.secagg).length === 0) throw new Error(`${w.op}: secagg is ${show(m.secagg)}; null without secure aggregation, else at least one field`);
        w.secagg(m.secagg);
      }
    },
    read: (r) => {
      const modelVersion = r.count('modelVersion');
      const config = roundConfig(r.op, r.json('config'));
      const weights = r.named('weights');
      const secagg = r.secagg();
      return { type: 'round', modelVersion, config, weights, secagg: Object.keys(secagg).length > 0 ? secagg : null };
    },
  },
  update: {
    write: (m, w) => {
      w.count('round', m.round);
      w.count('modelVersion', m.modelVersion);
      w.count('examples', m.examples);
      w.measure('loss', m.loss);
      const d: unknown = m.delta;
      if (!isRecord(d) || (d.kind !== 'f32' && d.kind !== 'q8')) throw new Error(`${w.op}: delta is ${show(d)}, not { kind: 'f32' | 'q8', ... }`);
      w.metadata.delta = d.kind;
      if (m.delta.kind === 'f32') {
        w.named('delta', m.delta.tensors);
        return;
      }
      const { blockSize, codes, scales } = m.delta;
      w.count('blockSize', blockSize);
      if (!(codes instanceof Uint8Array)) throw new Error(`${w.op}: codes are ${show(codes)}, not a Uint8Array`);
      checkQuantizeSizes(w.op, codes.length, blockSize);
      w.tensor('q8/codes', codes, Uint8Array, [codes.length]);
      const blocks = quantizedBlocks(codes.length, blockSize);
      if (!(scales instanceof Float32Array) || scales.length !== 2 * blocks) throw new Error(`${w.op}: scales must be a Float32Array of 2 x ${blocks} blocks for ${codes.length} codes in blocks of ${blockSize}`);
      w.tensor('q8/scales', scales, Float32Array, [blocks, 2]);
    },
    read: (r) => {
      const round = r.count('round');
      const modelVersion = r.count('modelVersion');
      const examples = r.count('examples');
      const loss = r.measure('loss');
      const kind = r.string('delta');
      if (kind === 'f32') return { type: 'update', round, modelVersion, examples, loss, delta: { kind, tensors: r.named('delta') } };
      if (kind !== 'q8') throw new Error(`${r.op}: delta is ${show(kind)}, not "f32" or "q8"`);
      const blockSize = r.count('blockSize');
      const codes = r.tensor('q8/codes', Uint8Array, 1).data;
      checkQuantizeSizes(r.op, codes.length, blockSize);
      const scales = r.tensor('q8/scales', Float32Array, 2);
      const blocks = quantizedBlocks(codes.length, blockSize);
      if (scales.shape[0] !== blocks || scales.shape[1] !== 2) {
        throw new Error(`${r.op}: tensor q8/scales has shape [${scales.shape.join(',')}]; ${codes.length} codes in blocks of ${blockSize} need [${blocks},2]`);
      }
      return { type: 'update', round, modelVersion, examples, loss, delta: { kind, blockSize, codes, scales: scales.data } };
    },
  },
  evaluate: {
    write: (m, w) => {
      w.count('round', m.round);
      w.count('modelVersion', m.modelVersion);
      w.named('weights', m.weights);
    },
    read: (r) => ({ type: 'evaluate', round: r.count('round'), modelVersion: r.count('modelVersion'), weights: r.named('weights') }),
  },
  evaluation: {
    write: (m, w) => {
      w.count('round', m.round);
      w.count('modelVersion', m.modelVersion);
      w.count('examples', m.examples);
      if (!isRecord(m.metrics)) throw new Error(`${w.op}: metrics are ${show(m.metrics)}, not an object`);
      for (const [name, v] of Object.entries(m.metrics)) {
        if (name === '') throw new Error(`${w.op}: a metric has an empty name`);
        w.measure(`metric.${name}`, v);
      }
    },
    read: (r) => {
      const round = r.count('round');
      const modelVersion = r.count('modelVersion');
      const examples = r.count('examples');
      const names = r.keysUnder('metric.');
      if (names.includes('')) throw new Error(`${r.op}: a metric has an empty name`);
      const metrics = Object.fromEntries(names.map((n) => [n, r.measure(`metric.${n}`)]));
      return { type: 'evaluation', round, modelVersion, examples, metrics };
    },
  },
  secagg: {
    write: (m, w) => {
      w.count('round', m.round);
      w.string('stage', m.stage);
      w.secagg(m.fields);
    },
    read: (r) => ({ type: 'secagg', round: r.count('round'), stage: r.string('stage'), fields: r.secagg() }),
  },
  bye: {
    write: () => {},
    read: () => ({ type: 'bye' }),
  },
};

function codecOf(op: string, type: unknown): Codec<WireMessage> {
  if (typeof type !== 'string' || !Object.hasOwn(CODECS, type)) {
    throw new Error(`${op}: unknown message type ${show(type)} (known: ${Object.keys(CODECS).join(', ')})`);
  }
  // The table pairs each type with its own codec; TypeScript cannot follow that through a lookup.
  return CODECS[type as WireMessageType] as unknown as Codec<WireMessage>;
}

/** The message as one frame (a safetensors file; see the top of this file). */
export function encodeFrame(message: WireMessage): Uint8Array {
  const type: unknown = isRecord(message) ? message.type : undefined;
  const codec = codecOf('wire: encodeFrame', type);
  const w = new FrameWriter(`wire: encodeFrame ${type as WireMessageType}`, type as WireMessageType);
  codec.write(message, w);
  try {
    return encodeSafetensors(w.tensors, w.metadata);
  } catch (e) {
    throw new Error(`${w.op}: ${(e as Error).message}`);
  }
}

/** The message in a frame, checked whole (see the top of this file); throws an Error naming what is wrong. */
export function decodeFrame(bytes: Uint8Array, options: DecodeOptions = {}): WireMessage {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!(bytes instanceof Uint8Array)) throw new Error(`wire: a frame is a Uint8Array, not ${show(bytes)}`);
  if (bytes.length > maxBytes) throw new Error(`wire: frame of ${bytes.length} bytes exceeds the limit of ${maxBytes} bytes`);
  if (bytes.length < 8 + MAGIC.length || MAGIC.some((b, i) => bytes[8 + i] !== b)) {
    throw new Error(`wire: not a ${WIRE_FORMAT} frame (its header does not begin with the magic ${new TextDecoder().decode(MAGIC)})`);
  }
  // The version's digits up to the closing quote, read before any JSON is parsed.
  const tail = bytes.subarray(8 + MAGIC.length, 8 + MAGIC.length + 12);
  const quote = tail.indexOf(0x22);
  const version = new TextDecoder().decode(tail.subarray(0, Math.max(quote, 0)));
  if (quote < 0 || !INTEGER.test(version)) throw new Error(`wire: the frame's version is not a decimal number`);
  if (!WIRE_VERSIONS.includes(Number(version))) {
    throw new Error(`wire: frame version ${version} is not supported (this side speaks version ${WIRE_VERSIONS.join(', ')})`);
  }

  let decoded: ReturnType<typeof decodeTypedSafetensors>;
  try {
    decoded = decodeTypedSafetensors(bytes, { maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES });
  } catch (e) {
    throw new Error(`wire: ${(e as Error).message}`);
  }
  const { tensors, metadata } = decoded;
  const headerBytes = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  let tensorBytes = 0;
  for (const t of tensors.values()) tensorBytes += t.data.byteLength;
  const stray = bytes.length - 8 - headerBytes - tensorBytes;
  if (stray !== 0) throw new Error(`wire: ${stray} bytes of the frame belong to no tensor`);
  // The JSON must say what its first bytes said (escapes could make them differ).
  if (metadata.wire !== WIRE_FORMAT || metadata.version !== version) throw new Error(`wire: the header's wire and version fields disagree with its first bytes`);

  const codec = codecOf('wire: decodeFrame', metadata.type);
  const fields = { ...metadata };
  delete fields.wire;
  delete fields.version;
  delete fields.type;
  const r = new FrameReader(`wire: decodeFrame ${metadata.type}`, fields, tensors);
  const message = codec.read(r);
  r.done();
  return message;
}

/** The weights of a flat [layout.length] vector by parameter name, in the layout's order (views into `flat`). */
export function namedFromFlat(layout: PayloadLayout, flat: Float32Array): Map<string, NamedArray> {
  if (flat.length !== layout.length) throw new Error(`namedFromFlat: the vector has ${flat.length} elements; the layout has ${layout.length}`);
  return new Map(layout.entries.map((e) => [e.name, { shape: [...e.shape], data: flat.subarray(e.offset, e.offset + e.size) }]));
}

/** A flat [layout.length] vector (zeros in the gaps) of weights by parameter name, which must be the layout's names and shapes. */
export function flatFromNamed(layout: PayloadLayout, tensors: NamedTensors): Float32Array {
  const op = 'flatFromNamed';
  const extra = [...tensors.keys()].filter((n) => !layout.entries.some((e) => e.name === n));
  if (extra.length > 0) throw new Error(`${op}: the layout has no parameter ${extra.join(', ')} (it has ${layout.entries.map((e) => e.name).join(', ')})`);
  const flat = new Float32Array(layout.length);
  for (const e of layout.entries) {
    const t = tensors.get(e.name);
    if (t === undefined) throw new Error(`${op}: parameter ${e.name} is missing`);
    if (t.shape.join() !== e.shape.join()) throw new Error(`${op}: parameter ${e.name} is [${t.shape.join(',')}]; the layout has [${e.shape.join(',')}]`);
    flat.set(t.data, e.offset);
  }
  return flat;
}
