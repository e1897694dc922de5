import { describe, expect, it } from 'vitest';
import { encodeSafetensors, type NamedArray, type TensorData } from '../../src/engine/io/safetensors.js';
import type { PayloadLayout, RoundConfig } from '../../src/paradigms/federated/protocol.js';
import {
  decodeFrame,
  DEFAULT_MAX_HEADER_BYTES,
  encodeFrame,
  flatFromNamed,
  namedFromFlat,
  WIRE_FORMAT,
  type WireMessage,
} from '../../src/paradigms/federated/wire.js';
import { safetensorsFile } from './safetensors-file.js';

/** A seeded generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Deterministic pseudo-random f32 values over a few magnitudes. */
function values(n: number, seed: number): Float32Array {
  const random = rng(seed);
  return Float32Array.from({ length: n }, (_, i) => (random() - 0.5) * 10 ** ((i % 5) - 2));
}

function bytes(n: number, seed: number): Uint8Array {
  const random = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
}

const config: RoundConfig = { round: 3, epochs: 2, batchSize: 10, learningRate: 0.1, proximalMu: 0.01, seed: 12345, compression: { bits: 8, errorFeedback: true } };

function weights(seed: number): Map<string, NamedArray> {
  return new Map<string, NamedArray>([
    ['fc1.weight', { shape: [3, 4], data: values(12, seed) }],
    ['fc1.bias', { shape: [4], data: values(4, seed + 1) }],
    // -0, +-Infinity, NaN, the smallest subnormal: bit-exact on the wire.
    ['head.weight', { shape: [5], data: new Float32Array([-0, Infinity, -Infinity, NaN, 1.401298464324817e-45]) }],
    ['2', { shape: [], data: new Float32Array([7.5]) }], // integer-like: keeps its place
  ]);
}

const MESSAGES: WireMessage[] = [
  { type: 'hello', clientId: 'client-7', token: 'aBc_-123', model: 'fashion-2nn', capabilities: ['q8', 'secagg'] },
  { type: 'welcome', clientId: 'client-7', capabilities: [] },
  { type: 'error', reason: 'authentication failed ✗' },
  { type: 'round', modelVersion: 7, config, weights: weights(1), secagg: null },
  {
    type: 'round',
    modelVersion: 8,
    config: { ...config, compression: null, proximalMu: 0 },
    weights: weights(2),
    secagg: { threshold: 3, modulusBits: 32, group: 'x25519', publicKey: bytes(32, 3), empty: new Uint8Array(0) },
  },
  { type: 'update', round: 3, modelVersion: 7, examples: 96, loss: 0.4321, delta: { kind: 'f32', tensors: weights(4) } },
  {
    type: 'update',
    round: 3,
    modelVersion: 7,
    examples: 120,
    loss: NaN,
    delta: { kind: 'q8', blockSize: 8, codes: bytes(21, 5), scales: values(6, 6) },
  },
  { type: 'evaluate', round: 4, modelVersion: 8, weights: weights(7) },
  { type: 'evaluation', round: 4, modelVersion: 8, examples: 24, metrics: { accuracy: 0.8333333333333334, loss: -0, perplexity: Infinity, '0': 1e-300 } },
  { type: 'secagg', round: 4, stage: 'share-keys', fields: { from: 'client-7', to: 'client-9', ciphertext: bytes(100, 8), index: 2, ['__proto__']: 'own field' } },
  { type: 'secagg', round: 4, stage: 'ready', fields: {} },
  { type: 'bye' },
];

/** A comparable form: floats by their bits, -0 and NaN spelled out, maps in order, objects by sorted keys. */
function canonical(v: unknown): unknown {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : Number.isNaN(v) ? 'NaN' : v;
  if (v instanceof Float32Array) return { f32: Array.from(new Uint32Array(v.buffer, v.byteOffset, v.length)) };
  if (v instanceof Uint8Array) return { u8: Array.from(v) };
  if (v instanceof Map) return { map: [...v].map(([k, x]) => [k, canonical(x)]) };
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return { object: Object.keys(o).sort().map((k) => [k, canonical(o[k])]) };
  }
  return v;
}

/** A frame with these metadata fields (after wire and version) and tensors, made without encodeFrame. */
function frameOf(metadata: Record<string, string>, tensors = new Map<string, NamedArray<TensorData>>()): Uint8Array {
  return encodeSafetensors(tensors, { wire: WIRE_FORMAT, version: '1', ...metadata });
}

/** An independent minimal safetensors reader: u64 LE header length, JSON header, then the data. */
function readSafetensors(file: Uint8Array) {
  const n = Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Record<string, unknown>;
  const data = file.subarray(8 + n);
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const arrays = { F32: Float32Array, I32: Int32Array, U32: Uint32Array, U8: Uint8Array };
  const tensors = new Map<string, { dtype: string; shape: number[]; data: TensorData }>();
  let covered = 0;
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: [b, e] } = entry as { dtype: keyof typeof arrays; shape: number[]; data_offsets: [number, number] };
    const raw = new Uint8Array(data.subarray(b, e)); // a copy, aligned
    tensors.set(name, { dtype, shape, data: new arrays[dtype](raw.buffer) });
    covered += e - b;
  }
  return { headerLength: n, header: new TextDecoder().decode(file.subarray(8, 8 + n)), metadata, tensors, dataLength: data.length, covered };
}

describe('wire frames', () => {
  it('round-trips every message type bit-exactly', () => {
    const types = new Set(MESSAGES.map((m) => m.type));
    expect(types.size).toBe(9);
    for (const m of MESSAGES) {
      const frame = encodeFrame(m);
      expect(canonical(decodeFrame(frame)), m.type).toEqual(canonical(m));
    }
  });

  it('keeps the weights in the order they were given (the model order)', () => {
    const frame = encodeFrame(MESSAGES[3]!);
    const decoded = decodeFrame(frame);
    expect(decoded.type).toBe('round');
    if (decoded.type !== 'round') return;
    expect([...decoded.weights.keys()]).toEqual(['fc1.weight', 'fc1.bias', 'head.weight', '2']);
    expect(decoded.config).toEqual(config);
  });

  it('is a safetensors file that an independent reader parses to the same tensors and metadata', () => {
    const round = MESSAGES[4]! as Extract<WireMessage, { type: 'round' }>;
    const file = readSafetensors(encodeFrame(round));
    expect((8 + file.headerLength) % 8).toBe(0);
    expect(file.header.startsWith(`{"__metadata__":{"wire":"${WIRE_FORMAT}","version":"1","type":"round",`)).toBe(true);
    expect(file.covered).toBe(file.dataLength);
    expect(file.metadata).toEqual({
      wire: WIRE_FORMAT,
      version: '1',
      type: 'round',
      modelVersion: '8',
      config: JSON.stringify({ ...config, compression: null, proximalMu: 0 }),
      'secagg.number.threshold': '3',
      'secagg.number.modulusBits': '32',
      'secagg.string.group': 'x25519',
    });
    expect([...file.tensors.keys()]).toEqual(['weights/fc1.weight', 'weights/fc1.bias', 'weights/head.weight', 'weights/2', 'secagg/publicKey', 'secagg/empty']);
    for (const [name, t] of round.weights) {
      const read = file.tensors.get(`weights/${name}`)!;
      expect(read.dtype).toBe('F32');
      expect(read.shape).toEqual(t.shape);
      expect(canonical(read.data)).toEqual(canonical(t.data));
    }
    expect(file.tensors.get('secagg/publicKey')).toEqual({ dtype: 'U8', shape: [32], data: round.secagg!.publicKey });

    const q8 = MESSAGES[6]! as Extract<WireMessage, { type: 'update' }>;
    const update = readSafetensors(encodeFrame(q8));
    expect(update.metadata).toEqual({ wire: WIRE_FORMAT, version: '1', type: 'update', round: '3', modelVersion: '7', examples: '120', loss: 'NaN', delta: 'q8', blockSize: '8' });
    if (q8.delta.kind !== 'q8') throw new Error('unreachable');
    expect(update.tensors.get('q8/codes')).toEqual({ dtype: 'U8', shape: [21], data: q8.delta.codes });
    const scales = update.tensors.get('q8/scales')!;
    expect(scales.shape).toEqual([3, 2]);
    expect(canonical(scales.data)).toEqual(canonical(q8.delta.scales));

    const evaluation = readSafetensors(encodeFrame(MESSAGES[8]!));
    expect(evaluation.metadata).toMatchObject({ 'metric.accuracy': '0.8333333333333334', 'metric.loss': '-0', 'metric.perplexity': 'Infinity', 'metric.0': '1e-300' });
  });

  it('converts between the flat vector of a payload layout and named tensors', () => {
    const layout: PayloadLayout = {
      entries: [
        { name: 'a', shape: [2, 3], size: 6, offset: 0 },
        { name: 'b', shape: [3], size: 3, offset: 64 },
      ],
      length: 128,
      values: 9,
    };
    const flat = new Float32Array(128);
    flat.set([1, 2, 3, 4, 5, 6]);
    flat.set([7, 8, 9], 64);
    const named = namedFromFlat(layout, flat);
    expect([...named.keys()]).toEqual(['a', 'b']);
    expect(named.get('b')).toEqual({ shape: [3], data: new Float32Array([7, 8, 9]) });
    const round = decodeFrame(encodeFrame({ type: 'evaluate', round: 0, modelVersion: 0, weights: named }));
    if (round.type !== 'evaluate') throw new Error('unreachable');
    expect(flatFromNamed(layout, round.weights)).toEqual(flat);

    expect(() => namedFromFlat(layout, new Float32Array(9))).toThrow(/namedFromFlat: the vector has 9 elements; the layout has 128/);
    expect(() => flatFromNamed(layout, new Map([['a', named.get('a')!]]))).toThrow(/flatFromNamed: parameter b is missing/);
    expect(() => flatFromNamed(layout, new Map([...named, ['c', named.get('b')!]]))).toThrow(/the layout has no parameter c \(it has a, b\)/);
    expect(() => flatFromNamed(layout, new Map([['a', { shape: [3, 2], data: new Float32Array(6) }], ['b', named.get('b')!]]))).toThrow(/parameter a is \[3,2\]; the layout has \[2,3\]/);
  });
});

describe('decodeFrame refuses', () => {
  const hello = encodeFrame(MESSAGES[0]!);

  it('frames over the size limit', () => {
    expect(() => decodeFrame(hello, { maxBytes: hello.length - 1 })).toThrow(new RegExp(`wire: frame of ${hello.length} bytes exceeds the limit of ${hello.length - 1} bytes`));
    expect(decodeFrame(hello, { maxBytes: hello.length }).type).toBe('hello');
  });

  it('bytes without the magic: another safetensors file, text, nothing', () => {
    const notFrame = /wire: not a webgpu-train\.federated frame \(its header does not begin with the magic/;
    expect(() => decodeFrame(encodeSafetensors({ w: { shape: [1], data: new Float32Array(1) } }, { format: 'pt' }))).toThrow(notFrame);
    expect(() => decodeFrame(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: example\r\n\r\n'.repeat(3)))).toThrow(notFrame);
    expect(() => decodeFrame(new Uint8Array(0))).toThrow(notFrame);
    expect(() => decodeFrame(hello.subarray(0, 20))).toThrow(notFrame);
    expect(() => decodeFrame('hello' as never)).toThrow(/wire: a frame is a Uint8Array, not "hello"/);
  });

  it('versions it does not speak, naming the version and the ones it does', () => {
    const v2 = frameOf({ type: 'bye' });
    const at = 8 + `{"__metadata__":{"wire":"${WIRE_FORMAT}","version":"`.length;
    expect(String.fromCharCode(v2[at]!)).toBe('1');
    v2[at] = '2'.charCodeAt(0);
    expect(() => decodeFrame(v2)).toThrow(/wire: frame version 2 is not supported \(this side speaks version 1\)/);
    const v12 = encodeSafetensors(new Map(), { wire: WIRE_FORMAT, version: '12', type: 'bye' });
    expect(() => decodeFrame(v12)).toThrow(/frame version 12 is not supported/);
    const bad = encodeSafetensors(new Map(), { wire: WIRE_FORMAT, version: 'x1', type: 'bye' });
    expect(() => decodeFrame(bad)).toThrow(/wire: the frame's version is not a decimal number/);
    // A header whose JSON says another version than its first bytes (a duplicate key).
    const twice = safetensorsFile(`{"__metadata__":{"wire":"${WIRE_FORMAT}","version":"1","type":"bye","version":"2"}}`);
    expect(() => decodeFrame(twice)).toThrow(/the header's wire and version fields disagree with its first bytes/);
  });

  it('unknown and missing message types', () => {
    expect(() => decodeFrame(frameOf({ type: 'ping' }))).toThrow(/wire: decodeFrame: unknown message type "ping" \(known: hello, welcome, error, round, update, evaluate, evaluation, secagg, bye\)/);
    expect(() => decodeFrame(frameOf({ type: 'constructor' }))).toThrow(/unknown message type "constructor"/);
    expect(() => decodeFrame(frameOf({}))).toThrow(/unknown message type undefined/);
  });

  it('missing, ill-typed and unexpected fields', () => {
    const update = { type: 'update', round: '3', modelVersion: '7', examples: '96', loss: '0.5', delta: 'f32' };
    const delta = new Map<string, NamedArray<TensorData>>([['delta/w', { shape: [2], data: new Float32Array([1, 2]) }]]);
    expect(decodeFrame(frameOf(update, delta)).type).toBe('update');
    expect(() => decodeFrame(frameOf({ type: 'hello', token: 't', model: 'm', capabilities: '[]' }))).toThrow(/wire: decodeFrame hello: field clientId is missing/);
    expect(() => decodeFrame(frameOf({ type: 'hello', clientId: '', token: 't', model: 'm', capabilities: '[]' }))).toThrow(/field clientId is empty/);
    expect(() => decodeFrame(frameOf({ type: 'hello', clientId: 'c', token: 't', model: 'm', capabilities: '["a", 1]' }))).toThrow(/field capabilities is not a JSON array of strings/);
    expect(() => decodeFrame(frameOf({ type: 'hello', clientId: 'c', token: 't', model: 'm', capabilities: '[' }))).toThrow(/field capabilities is not valid JSON/);
    for (const round of ['abc', '1.5', '-1', '01', '1e3', '', ' 1', '9007199254740993']) {
      expect(() => decodeFrame(frameOf({ ...update, round }, delta)), round).toThrow(new RegExp(`field round is ${JSON.stringify(round).replace(/[.+]/g, '\\$&')}, not an integer >= 0`));
    }
    for (const loss of ['abc', '', '0x10', '1e5', 'nan', '+1', '1.']) {
      expect(() => decodeFrame(frameOf({ ...update, loss }, delta)), loss).toThrow(/field loss is .*, not a number/);
    }
    expect(() => decodeFrame(frameOf({ ...update, delta: 'f16' }, delta))).toThrow(/delta is "f16", not "f32" or "q8"/);
    expect(() => decodeFrame(frameOf({ ...update, note: 'x' }, delta))).toThrow(/wire: decodeFrame update: unexpected fields note/);
    const extraTensor = new Map([...delta, ['stray', { shape: [1], data: new Float32Array(1) }]]);
    expect(() => decodeFrame(frameOf(update, extraTensor))).toThrow(/unexpected fields tensor stray/);
    expect(() => decodeFrame(frameOf(update))).toThrow(/no delta\/ tensors/);
    const u8 = new Map<string, NamedArray<TensorData>>([['delta/w', { shape: [2], data: new Uint8Array(2) }]]);
    expect(() => decodeFrame(frameOf(update, u8))).toThrow(/tensor delta\/w is Uint8Array, not Float32Array/);
  });

  it('round configurations that are not RoundConfigs', () => {
    const w = new Map<string, NamedArray<TensorData>>([['weights/w', { shape: [1], data: new Float32Array(1) }]]);
    const round = (c: unknown) => frameOf({ type: 'round', modelVersion: '1', config: JSON.stringify(c) }, w);
    expect(decodeFrame(round(config)).type).toBe('round');
    expect(() => decodeFrame(round([1]))).toThrow(/config is an array, not an object/);
    expect(() => decodeFrame(round({ ...config, extra: 1 }))).toThrow(/config has unknown fields extra/);
    const { seed: _, ...noSeed } = config;
    expect(() => decodeFrame(round(noSeed))).toThrow(/config lacks seed/);
    expect(() => decodeFrame(round({ ...config, epochs: '2' }))).toThrow(/config epochs is "2", not a number/);
    expect(() => decodeFrame(round({ ...config, learningRate: -1 }))).toThrow(/config: learningRate -1 must be a positive finite number/);
    expect(() => decodeFrame(round({ ...config, round: 1.5 }))).toThrow(/config: round 1\.5 must be an integer >= 0/);
    expect(() => decodeFrame(round({ ...config, compression: { bits: 4, errorFeedback: true } }))).toThrow(/compression \{"bits":4,"errorFeedback":true\} must be null or/);
    expect(() => decodeFrame(round({ ...config, compression: { bits: 8, errorFeedback: 1 } }))).toThrow(/must be null or \{ bits: 8/);
    const withExtraCompression = decodeFrame(round({ ...config, compression: { bits: 8, errorFeedback: false } }));
    expect(withExtraCompression.type === 'round' && withExtraCompression.config.compression).toEqual({ bits: 8, errorFeedback: false });
  });

  it('tensors whose byte length does not match shape x dtype, stray bytes, and encoded updates that do not fit', () => {
    const meta = `"__metadata__":{"wire":"${WIRE_FORMAT}","version":"1","type":"evaluate","round":"0","modelVersion":"0"}`;
    const short = safetensorsFile(`{${meta},"weights/w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, new Uint8Array(8));
    expect(() => decodeFrame(short)).toThrow(/wire: safetensors: tensor "weights\/w": data_offsets \[0,8\] span 8 bytes but shape \[3\] F32 needs 12/);
    const past = safetensorsFile(`{${meta},"weights/w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}`, new Uint8Array(8));
    expect(() => decodeFrame(past)).toThrow(/out of range \(byte buffer has 8 bytes; file truncated\?\)/);
    const f16 = safetensorsFile(`{${meta},"weights/w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, new Uint8Array(4));
    expect(() => decodeFrame(f16)).toThrow(/unsupported dtype "F16" \(supported: F32, I32, U32, U8\)/);
    const evaluate = encodeFrame(MESSAGES[7]!);
    const padded = new Uint8Array(evaluate.length + 4);
    padded.set(evaluate);
    expect(() => decodeFrame(padded)).toThrow(/wire: 4 bytes of the frame belong to no tensor/);
    const gap = safetensorsFile(`{${meta},"weights/w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, new Uint8Array(8));
    expect(() => decodeFrame(gap)).toThrow(/4 bytes of the frame belong to no tensor/);

    const q8 = { type: 'update', round: '1', modelVersion: '1', examples: '5', loss: '1', delta: 'q8', blockSize: '8' };
    const tensors = (codes: number, blocks: number) =>
      new Map<string, NamedArray<TensorData>>([
        ['q8/codes', { shape: [codes], data: new Uint8Array(codes) }],
        ['q8/scales', { shape: [blocks, 2], data: new Float32Array(blocks * 2) }],
      ]);
    expect(decodeFrame(frameOf(q8, tensors(17, 3))).type).toBe('update');
    expect(() => decodeFrame(frameOf(q8, tensors(17, 2)))).toThrow(/tensor q8\/scales has shape \[2,2\]; 17 codes in blocks of 8 need \[3,2\]/);
    expect(() => decodeFrame(frameOf({ ...q8, blockSize: '6' }, tensors(17, 3)))).toThrow(/blockSize 6 must be a multiple of 4/);
    expect(() => decodeFrame(frameOf(q8, new Map([['q8/codes', { shape: [2], data: new Uint8Array(2) }]])))).toThrow(/tensor q8\/scales is missing/);
    expect(() => decodeFrame(frameOf(q8, new Map([['q8/codes', { shape: [1, 2], data: new Uint8Array(2) }]])))).toThrow(/tensor q8\/codes has shape \[1,2\], not rank 1/);
  });

  it('headers over their limit', () => {
    const long = encodeFrame({ type: 'error', reason: 'x'.repeat(DEFAULT_MAX_HEADER_BYTES) });
    expect(() => decodeFrame(long)).toThrow(new RegExp(`wire: safetensors: header length \\d+ exceeds the limit of ${DEFAULT_MAX_HEADER_BYTES} bytes`));
    expect(decodeFrame(long, { maxHeaderBytes: 2 * DEFAULT_MAX_HEADER_BYTES }).type).toBe('error');
    expect(() => decodeFrame(hello, { maxHeaderBytes: 64 })).toThrow(/header length \d+ exceeds the limit of 64 bytes/);
  });

  it('secure aggregation fields named twice or not at all, and non-finite numbers', () => {
    const twice = frameOf({ type: 'secagg', round: '1', stage: 's', 'secagg.number.x': '1' }, new Map([['secagg/x', { shape: [1], data: new Uint8Array(1) }]]));
    expect(() => decodeFrame(twice)).toThrow(/secure aggregation field x appears twice/);
    expect(() => decodeFrame(frameOf({ type: 'secagg', round: '1', stage: 's', 'secagg.string.': 'v' }))).toThrow(/a secure aggregation field has an empty name/);
    expect(() => decodeFrame(frameOf({ type: 'secagg', round: '1', stage: 's', 'secagg.number.t': 'NaN' }))).toThrow(/field secagg\.number\.t is "NaN", not a finite number/);
    expect(() => decodeFrame(frameOf({ type: 'secagg', round: '1', stage: 's', 'secagg.number.t': '1e+999' }))).toThrow(/not a finite number/);
    const matrix = new Map([['secagg/m', { shape: [2, 2], data: new Uint8Array(4) }]]);
    expect(() => decodeFrame(frameOf({ type: 'secagg', round: '1', stage: 's' }, matrix))).toThrow(/tensor secagg\/m has shape \[2,2\], not rank 1/);
    expect(() => decodeFrame(frameOf({ type: 'evaluation', round: '1', modelVersion: '1', examples: '1', 'metric.': '1' }))).toThrow(/a metric has an empty name/);
  });
});

describe('encodeFrame refuses', () => {
  const update = MESSAGES[5]! as Extract<WireMessage, { type: 'update' }>;
  const round = MESSAGES[3]! as Extract<WireMessage, { type: 'round' }>;
  const encode = (m: unknown) => () => encodeFrame(m as WireMessage);

  it('unknown types and non-messages', () => {
    expect(encode({ type: 'ping' })).toThrow(/wire: encodeFrame: unknown message type "ping"/);
    expect(encode(null)).toThrow(/unknown message type undefined/);
  });

  it('fields of the wrong type, empty names and non-finite numbers where they mean nothing', () => {
    expect(encode({ ...MESSAGES[0]!, clientId: '' })).toThrow(/wire: encodeFrame hello: clientId is "", not a non-empty string/);
    expect(encode({ ...MESSAGES[0]!, clientId: 42 })).toThrow(/clientId is 42, not a non-empty string/);
    expect(encode({ ...MESSAGES[0]!, capabilities: 'q8' })).toThrow(/capabilities is "q8", not an array of strings/);
    for (const examples of [1.5, -1, NaN, Infinity, '3']) expect(encode({ ...update, examples }), String(examples)).toThrow(/examples is .*, not an integer >= 0/);
    expect(encode({ ...update, loss: '0.5' })).toThrow(/loss is "0\.5", not a number/);
    expect(encode({ ...update, delta: { kind: 'f16' } })).toThrow(/delta is an object, not \{ kind: 'f32' \| 'q8', \.\.\. \}/);
    expect(encode({ type: 'secagg', round: 1, stage: 's', fields: { t: NaN } })).toThrow(/secagg\.number\.t is NaN, not a finite number/);
    expect(encode({ type: 'secagg', round: 1, stage: 's', fields: { t: true } })).toThrow(/secure aggregation field t is a boolean, not a Uint8Array, number or string/);
    expect(encode({ type: 'secagg', round: 1, stage: 's', fields: { '': 1 } })).toThrow(/a secure aggregation field has an empty name/);
    expect(encode({ type: 'evaluation', round: 1, modelVersion: 1, examples: 1, metrics: { '': 1 } })).toThrow(/a metric has an empty name/);
    expect(encode({ type: 'evaluation', round: 1, modelVersion: 1, examples: 1, metrics: { acc: '1' } })).toThrow(/metric\.acc is "1", not a number/);
  });

  it('weights that are not named Float32Arrays of their shape', () => {
    expect(encode({ ...round, weights: {} })).toThrow(/weights is an object, not a Map of at least one named tensor/);
    expect(encode({ ...round, weights: new Map() })).toThrow(/not a Map of at least one named tensor/);
    expect(encode({ ...round, weights: new Map([[5, { shape: [1], data: new Float32Array(1) }]]) })).toThrow(/weights has a tensor named 5; names are non-empty strings/);
    expect(encode({ ...round, weights: new Map([['w', { shape: [1], data: new Float64Array(1) }]]) })).toThrow(/weights\/w is a Float64Array, not a Float32Array/);
    expect(encode({ ...round, weights: new Map([['w', { shape: [2, 3], data: new Float32Array(5) }]]) })).toThrow(/wire: encodeFrame round: safetensors: tensor "weights\/w": shape \[2,3\] has 6 elements but data has 5/);
    expect(encode({ ...round, config: { ...config, learningRate: 0 } })).toThrow(/learningRate 0 must be a positive finite number/);
    expect(encode({ ...round, secagg: {} })).toThrow(/secagg is an object; null without secure aggregation, else at least one field/);
    const q8 = { kind: 'q8', blockSize: 8, codes: new Uint8Array(17), scales: new Float32Array(4) };
    expect(encode({ ...update, delta: q8 })).toThrow(/scales must be a Float32Array of 2 x 3 blocks for 17 codes in blocks of 8/);
    expect(encode({ ...update, delta: { ...q8, codes: [1, 2] } })).toThrow(/codes are an array, not a Uint8Array/);
    expect(encode({ ...update, delta: { ...q8, blockSize: 6 } })).toThrow(/blockSize 6 must be a multiple of 4/);
  });
});

describe('decodeFrame on damaged frames', () => {
  it('decodes a truncated or bit-flipped frame to a valid message or throws a plain Error, never anything else', () => {
    const random = rng(2024);
    let decoded = 0;
    let refused = 0;
    const reasons = new Set<string>();
    for (const m of MESSAGES) {
      const frame = encodeFrame(m);
      const headerEnd = 8 + Number(new DataView(frame.buffer).getBigUint64(0, true));
      for (let trial = 0; trial < 400; trial++) {
        let damaged: Uint8Array;
        if (trial % 4 === 0) {
          damaged = frame.slice(0, Math.floor(random() * frame.length));
        } else {
          damaged = frame.slice();
          // Flip bits in the header most of the time: the data section holds values, which any bits make.
          const span = trial % 4 === 3 ? damaged.length : headerEnd;
          const flips = 1 + Math.floor(random() * 4);
          for (let f = 0; f < flips; f++) damaged[Math.floor(random() * span)]! ^= 1 << Math.floor(random() * 8);
        }
        let message: WireMessage;
        try {
          message = decodeFrame(damaged);
        } catch (e) {
          expect(e, String(e)).toBeInstanceOf(Error);
          expect((e as Error).constructor, String(e)).toBe(Error);
          expect((e as Error).message, String(e)).toMatch(/^wire: /);
          reasons.add((e as Error).message.replace(/[0-9]+/g, 'N').slice(0, 60));
          refused++;
          continue;
        }
        // Whatever it decoded to is a valid message: it encodes and decodes to itself.
        expect(canonical(decodeFrame(encodeFrame(message)))).toEqual(canonical(message));
        decoded++;
      }
    }
    expect(refused).toBeGreaterThan(1000);
    expect(decoded).toBeGreaterThan(100);
    expect(reasons.size).toBeGreaterThan(10);
  });
});
