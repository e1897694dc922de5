import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { safetensorsFile } from './safetensors-file.js';
import { decodeSafetensors, decodeTypedSafetensors, encodeSafetensors, type NamedArray, type TensorData } from '../../src/engine/io/safetensors.js';

const f32 = (xs: number[]) => new Float32Array(xs);
const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Deterministic pseudo-random f32 values, plus a few special ones. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 10 ** ((i % 7) - 3);
  }
  return out;
}

/** Every element's bits, whatever the typed array. */
const bitsOfAny = (a: TensorData) => (a instanceof Uint8Array ? Array.from(a) : Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length)));

/** One tensor of each dtype. */
function typedTensors(): Map<string, NamedArray<TensorData>> {
  return new Map<string, NamedArray<TensorData>>([
    ['f', { shape: [2, 2], data: values(4, 4) }],
    ['codes', { shape: [5], data: new Uint8Array([0, 1, 127, 128, 255]) }],
    ['i', { shape: [3], data: new Int32Array([-(2 ** 31), -1, 2 ** 31 - 1]) }],
    ['u', { shape: [1, 2], data: new Uint32Array([0, 2 ** 32 - 1]) }],
    ['3', { shape: [0], data: new Uint8Array(0) }],
  ]);
}

function sampleTensors(): Map<string, NamedArray> {
  return new Map<string, NamedArray>([
    ['layer1.weight', { shape: [3, 5], data: values(15, 1) }],
    ['layer1.bias', { shape: [5], data: values(5, 2) }],
    ['odd', { shape: [1, 7, 1, 3], data: values(21, 3) }],
    ['scalar', { shape: [], data: f32([-2.5]) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    // -0, +-Inf, NaN, smallest subnormal, max finite f32: must survive bit-exactly.
    ['special', { shape: [6], data: f32([-0, Infinity, -Infinity, NaN, 1.401298464324817e-45, 3.4028234663852886e38]) }],
    ['2', { shape: [2], data: f32([1, 2]) }], // integer-like name: JSON key order differs from data order
  ]);
}

/** Builds a file by hand from a header object and a data buffer (optionally without padding). */
function rawFile(header: unknown, data: Uint8Array, pad = true): Uint8Array {
  let json = JSON.stringify(header);
  if (pad) while ((json.length + 8) % 8 !== 0) json += ' ';
  return safetensorsFile(json, data);
}

describe('safetensors encode/decode', () => {
  it('round-trips several tensors (odd shapes, scalar, zero-size, specials) and metadata bit-exactly', () => {
    const tensors = sampleTensors();
    const meta = { format: 'pt', 'webgpu-train.step': '1234', unicode: 'héllo ✓' };
    const bytes = encodeSafetensors(tensors, meta);
    const { tensors: out, metadata } = decodeSafetensors(bytes);
    expect(metadata).toEqual(meta);
    expect([...out.keys()]).toEqual([...tensors.keys()]);
    for (const [name, t] of tensors) {
      const r = out.get(name)!;
      expect(r.shape, name).toEqual(t.shape);
      expect(r.data).toBeInstanceOf(Float32Array);
      expect(bitsOf(r.data), name).toEqual(bitsOf(t.data));
    }
  });

  it('accepts a plain record and no metadata (no __metadata__ key written)', () => {
    const bytes = encodeSafetensors({ a: { shape: [2, 2], data: f32([1, 2, 3, 4]) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header).toEqual({ a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } });
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(metadata).toEqual({});
    expect(Array.from(tensors.get('a')!.data)).toEqual([1, 2, 3, 4]);
  });

  it('writes the byte layout of the spec: u64 LE length, space padding to 8 bytes, contiguous offsets, LE f32 data', () => {
    const tensors = sampleTensors();
    const bytes = encodeSafetensors(tensors, { k: 'v' });
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = Number(dv.getBigUint64(0, true));
    expect(n % 8).toBe(0);
    expect((8 + n) % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.startsWith('{')).toBe(true);
    const trimmed = text.trimEnd();
    expect(text.length - trimmed.length).toBeLessThan(8);
    expect(/^ *$/.test(text.slice(trimmed.length))).toBe(true);
    const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    expect(header.__metadata__).toEqual({ k: 'v' });

    let expectedBegin = 0;
    for (const [name, t] of tensors) {
      const e = header[name]!;
      expect(e.dtype).toBe('F32');
      expect(e.shape).toEqual(t.shape);
      expect(e.data_offsets).toEqual([expectedBegin, expectedBegin + t.data.length * 4]);
      for (let i = 0; i < t.data.length; i++) {
        const u = dv.getUint32(8 + n + expectedBegin + 4 * i, true);
        expect(u).toBe(bitsOf(t.data)[i]);
      }
      expectedBegin += t.data.length * 4;
    }
    expect(bytes.length).toBe(8 + n + expectedBegin);
  });

  it('round-trips I32, U32 and U8 tensors next to F32 ones, each as its typed array, metadata first in the header', () => {
    const tensors = typedTensors();
    const bytes = encodeSafetensors(tensors, { kind: 'mixed' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    // __metadata__ first and the tensors in the order given, integer-like names included.
    expect(text.startsWith('{"__metadata__":{"kind":"mixed"},"f":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"codes":{"dtype":"U8"')).toBe(true);
    expect(text.trimEnd().endsWith('"3":{"dtype":"U8","shape":[0],"data_offsets":[41,41]}}')).toBe(true);
    const { tensors: out, metadata } = decodeTypedSafetensors(bytes);
    expect(metadata).toEqual({ kind: 'mixed' });
    expect([...out.keys()]).toEqual([...tensors.keys()]);
    for (const [name, t] of tensors) {
      const r = out.get(name)!;
      expect(r.data.constructor, name).toBe(t.data.constructor);
      expect(r.shape, name).toEqual(t.shape);
      expect(bitsOfAny(r.data), name).toEqual(bitsOfAny(t.data));
    }
  });

  it('decodeSafetensors keeps to F32; decodeTypedSafetensors refuses headers over its limit', () => {
    const bytes = encodeSafetensors(typedTensors());
    expect(() => decodeSafetensors(bytes)).toThrow(/unsupported dtype "U8" \(only F32 is supported\)/);
    expect(() => decodeTypedSafetensors(bytes, { maxHeaderBytes: 64 })).toThrow(/header length \d+ exceeds the limit of 64 bytes/);
    expect(() => encodeSafetensors({ c: { shape: [2], data: new Uint8ClampedArray(2) as never } })).toThrow(
      /tensor "c": data is not a Float32Array, Int32Array, Uint32Array or Uint8Array/,
    );
    const short = rawFile({ i: { dtype: 'I32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => decodeTypedSafetensors(short)).toThrow(/tensor "i": data_offsets \[0,8\] span 8 bytes but shape \[3\] I32 needs 12/);
  });

  it('encodes a Float32Array that is a view into a larger buffer', () => {
    const big = values(32, 9);
    const view = big.subarray(3, 9);
    const { tensors } = decodeSafetensors(encodeSafetensors({ v: { shape: [2, 3], data: view } }));
    expect(bitsOf(tensors.get('v')!.data)).toEqual(bitsOf(view));
  });

  it('decodes a Uint8Array view at a non-zero, non-4-aligned byteOffset and returns copies', () => {
    const bytes = encodeSafetensors(sampleTensors(), { a: 'b' });
    for (const off of [1, 3, 5]) {
      const host = new Uint8Array(bytes.length + off + 2).fill(0xee);
      host.set(bytes, off);
      const view = host.subarray(off, off + bytes.length);
      const { tensors, metadata } = decodeSafetensors(view);
      expect(metadata).toEqual({ a: 'b' });
      for (const [name, t] of sampleTensors()) expect(bitsOf(tensors.get(name)!.data), name).toEqual(bitsOf(t.data));
      // The decoded data does not alias the input.
      const w = tensors.get('layer1.weight')!.data;
      expect(w.buffer).not.toBe(host.buffer);
    }
  });

  it('decodes a file whose data section is not 8-byte aligned (no header padding)', () => {
    const data = new Uint8Array(f32([1.5, -2.25, 3]).buffer);
    for (const m of ['1', '12', '123', '1234']) {
      const file = rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, __metadata__: { m } }, data, false);
      const n = Number(new DataView(file.buffer).getBigUint64(0, true));
      if (n % 4 === 0) continue; // only the unaligned cases are of interest here
      const { tensors, metadata } = decodeSafetensors(file);
      expect(Array.from(tensors.get('x')!.data)).toEqual([1.5, -2.25, 3]);
      expect(metadata).toEqual({ m });
    }
  });

  describe('errors', () => {
    it('rejects shape/data length mismatch on encode, naming the tensor and shape', () => {
      expect(() => encodeSafetensors({ 'fc.weight': { shape: [2, 3], data: new Float32Array(5) } })).toThrow(
        /tensor "fc\.weight": shape \[2,3\] has 6 elements but data has 5/,
      );
      expect(() => encodeSafetensors({ bad: { shape: [2, -1], data: new Float32Array(2) } })).toThrow(
        /tensor "bad": invalid dimension -1 in shape \[2,-1\]/,
      );
      expect(() => encodeSafetensors({ bad: { shape: [1.5], data: new Float32Array(1) } })).toThrow(/invalid dimension 1\.5/);
      expect(() => encodeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } })).toThrow(/reserved/);
    });

    it('rejects non-F32 dtypes, naming the tensor and dtype', () => {
      const file = rawFile({ 'emb.weight': { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4));
      expect(() => decodeSafetensors(file)).toThrow(/tensor "emb\.weight": unsupported dtype "F16" \(only F32 is supported\)/);
      const file2 = rawFile({ t: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4));
      expect(() => decodeSafetensors(file2)).toThrow(/tensor "t": unsupported dtype "BF16"/);
    });

    it('rejects truncated files with a message saying what is missing', () => {
      const bytes = encodeSafetensors(sampleTensors());
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect(() => decodeSafetensors(bytes.subarray(0, 5))).toThrow(/file too short \(5 bytes\)/);
      expect(() => decodeSafetensors(new Uint8Array(0))).toThrow(/file too short \(0 bytes\)/);
      expect(() => decodeSafetensors(bytes.subarray(0, 8 + n - 3))).toThrow(
        new RegExp(`header length ${n} exceeds the ${n - 3} bytes after the length prefix \\(truncated`),
      );
      expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4))).toThrow(
        /tensor "2": data_offsets \[\d+,\d+\] out of range \(byte buffer has \d+ bytes; file truncated\?\)/,
      );
    });

    it('rejects garbage input', () => {
      const garbage = new Uint8Array(64);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 37 + 11) & 0xff;
      expect(() => decodeSafetensors(garbage)).toThrow(/header length \d+ exceeds the 56 bytes/);
      const notJson = new Uint8Array(24);
      new DataView(notJson.buffer).setBigUint64(0, 16n, true);
      notJson.set(new TextEncoder().encode('{"a": [1, 2, 3'), 8);
      expect(() => decodeSafetensors(notJson)).toThrow(/header is not valid JSON/);
      expect(() => decodeSafetensors(rawFile([1, 2], new Uint8Array(0)))).toThrow(/header JSON is not an object/);
      const badUtf8 = new Uint8Array(16);
      new DataView(badUtf8.buffer).setBigUint64(0, 8n, true);
      badUtf8.set([0x7b, 0xff, 0xfe, 0x7d, 0x20, 0x20, 0x20, 0x20], 8);
      expect(() => decodeSafetensors(badUtf8)).toThrow(/header is not valid UTF-8/);
    });

    it('rejects offsets inconsistent with the shape, out of range, reversed or overlapping', () => {
      const d = new Uint8Array(32);
      expect(() => decodeSafetensors(rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d))).toThrow(
        /tensor "w": data_offsets \[0,8\] span 8 bytes but shape \[3\] F32 needs 12/,
      );
      expect(() => decodeSafetensors(rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [24, 40] } }, d))).toThrow(
        /tensor "w": data_offsets \[24,40\] out of range \(byte buffer has 32 bytes/,
      );
      expect(() => decodeSafetensors(rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, d))).toThrow(
        /tensor "w": data_offsets \[8,4\] end before begin/,
      );
      expect(() => decodeSafetensors(rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } }, d))).toThrow(
        /tensor "w": data_offsets must be two non-negative integers/,
      );
      const overlap = {
        a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
        b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] },
      };
      expect(() => decodeSafetensors(rawFile(overlap, d))).toThrow(/tensors "a" \[0,16\] and "b" \[12,20\] overlap/);
      expect(() => decodeSafetensors(rawFile({ w: { dtype: 'F32', shape: 'x', data_offsets: [0, 4] } }, d))).toThrow(
        /tensor "w": shape is not an array/,
      );
      expect(() => decodeSafetensors(rawFile({ __metadata__: { n: 3 } }, d))).toThrow(/metadata value for "n" is not a string/);
    });
  });
});

// ---- Independent reader/writer: Python 3 with only json, struct and numpy. ----

const PY_READER = String.raw`
import json, struct, sys
import numpy as np
with open(sys.argv[1], 'rb') as f:
    buf = f.read()
(n,) = struct.unpack('<Q', buf[:8])
header = json.loads(buf[8:8 + n].decode('utf-8'))
data = buf[8 + n:]
out = {'header_len': n, 'file_len': len(buf), 'metadata': header.pop('__metadata__', {}), 'tensors': {}}
dtypes = {'F32': ('<f4', '<u4'), 'I32': ('<i4', '<u4'), 'U32': ('<u4', '<u4'), 'U8': ('u1', 'u1')}
for name, info in header.items():
    value, bits = dtypes[info['dtype']]
    b, e = info['data_offsets']
    arr = np.frombuffer(data[b:e], dtype=value).reshape(info['shape'])
    out['tensors'][name] = {
        'dtype': info['dtype'],
        'shape': list(arr.shape),
        'offsets': [b, e],
        'values': [float(x) if info['dtype'] == 'F32' else int(x) for x in arr.reshape(-1) if info['dtype'] != 'F32' or np.isfinite(x)],
        'bits': [int(x) for x in arr.reshape(-1).view(bits)],
    }
print(json.dumps(out))
`;

const PY_WRITER = String.raw`
import json, struct, sys
import numpy as np
path, pad = sys.argv[1], sys.argv[2] == 'pad'
tensors = [
    ('w', np.arange(15, dtype=np.float32).reshape(3, 5) * np.float32(0.1) - np.float32(0.7)),
    ('b', np.array([-0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4028235e38, 1.0/3.0], dtype=np.float32)),
    ('scalar', np.array(np.float32(42.125))),
    ('empty', np.zeros((0, 4), dtype=np.float32)),
    ('deep', np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 1, 4)),
]
header, chunks, off = {}, [], 0
for name, arr in tensors:
    raw = arr.astype('<f4').tobytes()
    header[name] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [off, off + len(raw)]}
    chunks.append(raw)
    off += len(raw)
header['__metadata__'] = {'format': 'pt', 'writer': 'python'}
hjson = json.dumps(header, sort_keys=True).encode('utf-8')
if pad:
    hjson += b' ' * ((8 - (8 + len(hjson)) % 8) % 8)
with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(hjson)) + hjson + b''.join(chunks))
print(json.dumps({'header_len': len(hjson), 'order': [n for n, _ in tensors],
                  'tensors': {n: {'shape': list(a.shape), 'bits': [int(x) for x in a.reshape(-1).view('<u4')]}
                              for n, a in tensors}}))
`;

function pythonStatus(): string | null {
  const r = spawnSync('python3', ['-c', 'import json, struct, numpy'], { encoding: 'utf8' });
  if (r.error) return `python3 not available (${r.error.message})`;
  if (r.status !== 0) return `python3 with numpy not available: ${r.stderr.trim().split('\n').at(-1)}`;
  return null;
}

function runPython(script: string, args: string[]): unknown {
  const r = spawnSync('python3', ['-c', script, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('safetensors cross-check with an independent Python reader/writer', () => {
  const skipReason = pythonStatus();
  const dir = mkdtempSync(join(tmpdir(), 'safetensors-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('Python (json+struct+numpy) reads our encoded file exactly', (ctx) => {
    if (skipReason) ctx.skip(`skipped: ${skipReason}`);
    const tensors = sampleTensors();
    const meta = { format: 'pt', note: 'from webgpu-train ✓' };
    const bytes = encodeSafetensors(tensors, meta);
    const path = join(dir, 'ours.safetensors');
    writeFileSync(path, bytes);
    const py = runPython(PY_READER, [path]) as {
      header_len: number;
      file_len: number;
      metadata: Record<string, string>;
      tensors: Record<string, { shape: number[]; offsets: [number, number]; bits: number[] }>;
    };
    expect(py.file_len).toBe(bytes.length);
    expect(py.header_len % 8).toBe(0);
    expect(py.metadata).toEqual(meta);
    expect(Object.keys(py.tensors).sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      expect(py.tensors[name]!.shape, name).toEqual(t.shape);
      expect(py.tensors[name]!.bits, name).toEqual(bitsOf(t.data));
    }
  });

  it('Python reads I32, U32 and U8 tensors as numpy int32, uint32 and uint8', (ctx) => {
    if (skipReason) ctx.skip(`skipped: ${skipReason}`);
    const tensors = typedTensors();
    const path = join(dir, 'typed.safetensors');
    writeFileSync(path, encodeSafetensors(tensors));
    const py = runPython(PY_READER, [path]) as { tensors: Record<string, { dtype: string; shape: number[]; values: number[]; bits: number[] }> };
    expect(py.tensors.i!.values).toEqual([-(2 ** 31), -1, 2 ** 31 - 1]);
    expect(py.tensors.u!.values).toEqual([0, 2 ** 32 - 1]);
    expect(py.tensors.codes!.values).toEqual([0, 1, 127, 128, 255]);
    for (const [name, t] of tensors) {
      expect(py.tensors[name]!.dtype, name).toBe({ Float32Array: 'F32', Int32Array: 'I32', Uint32Array: 'U32', Uint8Array: 'U8' }[t.data.constructor.name]);
      expect(py.tensors[name]!.shape, name).toEqual(t.shape);
      expect(py.tensors[name]!.bits, name).toEqual(bitsOfAny(t.data));
    }
  });

  it('our decoder reads a file written by hand in Python (padded and unpadded headers)', (ctx) => {
    if (skipReason) ctx.skip(`skipped: ${skipReason}`);
    for (const mode of ['pad', 'nopad']) {
      const path = join(dir, `py-${mode}.safetensors`);
      const expected = runPython(PY_WRITER, [path, mode]) as {
        header_len: number;
        order: string[];
        tensors: Record<string, { shape: number[]; bits: number[] }>;
      };
      if (mode === 'pad') expect((8 + expected.header_len) % 8).toBe(0);
      const { tensors, metadata } = decodeSafetensors(readFileSync(path));
      expect(metadata).toEqual({ format: 'pt', writer: 'python' });
      // Header keys are sorted by Python; we return tensors in data order.
      expect([...tensors.keys()]).toEqual(expected.order);
      for (const name of expected.order) {
        const t = tensors.get(name)!;
        expect(t.shape, `${mode} ${name}`).toEqual(expected.tensors[name]!.shape);
        expect(bitsOf(t.data), `${mode} ${name}`).toEqual(expected.tensors[name]!.bits);
      }
    }
  });
});
