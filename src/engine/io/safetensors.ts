// safetensors encoder/decoder (F32, I32, U32 and U8), pure TypeScript, no GPU code.
//
// Layout (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of UTF-8 JSON header][byte buffer]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} with offsets
// relative to the start of the byte buffer; the optional "__metadata__" entry is a string->string
// map. The header is padded with spaces so the byte buffer starts 8-byte aligned. The encoder
// writes "__metadata__" first and the tensors in the order given (the federated wire format,
// src/paradigms/federated/wire.ts, relies on the first bytes of the header).

/** The dtypes this codec reads and writes, with the typed array that holds each. */
const DTYPES = {
  F32: Float32Array,
  I32: Int32Array,
  U32: Uint32Array,
  U8: Uint8Array,
} as const;

export type SafetensorsDtype = keyof typeof DTYPES;
export type TensorData = Float32Array | Int32Array | Uint32Array | Uint8Array;

export interface NamedArray<D extends TensorData = Float32Array> {
  shape: number[];
  data: D;
}

const METADATA_KEY = '__metadata__';
/** Same limit as the reference implementation: refuse headers above 100 MB. */
const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function shapeStr(shape: readonly unknown[]): string {
  return `[${shape.join(',')}]`;
}

function checkShape(name: string, shape: unknown): number {
  if (!Array.isArray(shape)) throw new Error(`safetensors: tensor "${name}": shape is not an array`);
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new Error(`safetensors: tensor "${name}": invalid dimension ${JSON.stringify(d)} in shape ${shapeStr(shape)}`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new Error(`safetensors: tensor "${name}": shape ${shapeStr(shape)} is too large`);
  return n;
}

function dtypeOf(data: unknown): SafetensorsDtype | undefined {
  return (Object.keys(DTYPES) as SafetensorsDtype[]).find((d) => data instanceof DTYPES[d]);
}

/** Reverses the bytes of each `size`-byte element in place (little-endian file <-> big-endian host). */
function swapElements(bytes: Uint8Array, size: number): void {
  if (LITTLE_ENDIAN_HOST || size === 1) return;
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/**
 * Encodes tensors (in the given order; each one's dtype is its typed array's: Float32Array F32,
 * Int32Array I32, Uint32Array U32, Uint8Array U8) and optional string metadata as a safetensors file.
 */
export function encodeSafetensors(
  tensors: Map<string, NamedArray<TensorData>> | Record<string, NamedArray<TensorData>>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries: [string, NamedArray<TensorData>][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);

  // Built by hand rather than as one object: JSON.stringify would put integer-like tensor names first.
  const header: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata value for "${k}" is not a string`);
    }
    header.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }

  let offset = 0;
  for (const [name, t] of entries) {
    if (typeof name !== 'string') throw new Error(`safetensors: tensor name ${String(name)} is not a string`);
    if (name === METADATA_KEY) throw new Error(`safetensors: "${METADATA_KEY}" is reserved and cannot be a tensor name`);
    const dtype = dtypeOf(t.data);
    if (dtype === undefined) throw new Error(`safetensors: tensor "${name}": data is not a Float32Array, Int32Array, Uint32Array or Uint8Array`);
    const n = checkShape(name, t.shape);
    if (n !== t.data.length) {
      throw new Error(
        `safetensors: tensor "${name}": shape ${shapeStr(t.shape)} has ${n} elements but data has ${t.data.length}`,
      );
    }
    const bytes = t.data.byteLength;
    header.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] })}`);
    offset += bytes;
  }

  const json = new TextEncoder().encode(`{${header.join(',')}}`);
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);

  let pos = 8 + headerLen;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    swapElements(out.subarray(pos, pos + t.data.byteLength), t.data.BYTES_PER_ELEMENT);
    pos += t.data.byteLength;
  }
  return out;
}

/** Decodes a safetensors file holding only F32 tensors. The returned arrays are copies. */
export function decodeSafetensors(bytes: Uint8Array): {
  tensors: Map<string, NamedArray>;
  metadata: Record<string, string>;
} {
  // Only F32 is admitted, so every array is a Float32Array.
  return decode(bytes, ['F32'], MAX_HEADER_BYTES) as { tensors: Map<string, NamedArray>; metadata: Record<string, string> };
}

/**
 * Decodes a safetensors file of F32, I32, U32 and U8 tensors (each returned as its typed array),
 * refusing headers longer than `maxHeaderBytes` (default 100 MB). The returned arrays are copies.
 */
export function decodeTypedSafetensors(bytes: Uint8Array, options: { maxHeaderBytes?: number } = {}): {
  tensors: Map<string, NamedArray<TensorData>>;
  metadata: Record<string, string>;
} {
  return decode(bytes, Object.keys(DTYPES) as SafetensorsDtype[], options.maxHeaderBytes ?? MAX_HEADER_BYTES);
}

function decode(bytes: Uint8Array, dtypes: readonly SafetensorsDtype[], maxHeaderBytes: number): {
  tensors: Map<string, NamedArray<TensorData>>;
  metadata: Record<string, string>;
} {
  if (!(bytes instanceof Uint8Array)) throw new Error('safetensors: input is not a Uint8Array');
  if (bytes.length < 8) {
    throw new Error(`safetensors: file too short (${bytes.length} bytes); need at least 8 for the header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(bytes.length - 8)) {
    throw new Error(
      `safetensors: header length ${n64} exceeds the ${bytes.length - 8} bytes after the length prefix (truncated or not a safetensors file)`,
    );
  }
  const headerLen = Number(n64);
  if (headerLen > maxHeaderBytes) throw new Error(`safetensors: header length ${headerLen} exceeds the limit of ${maxHeaderBytes} bytes`);
  if (headerLen < 2) throw new Error(`safetensors: header length ${headerLen} is too small for a JSON object`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    throw new Error('safetensors: header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new Error(`safetensors: header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new Error('safetensors: header JSON is not an object');
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const specs: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new Error(`safetensors: "${METADATA_KEY}" is not an object`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Error(`safetensors: metadata value for "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`safetensors: tensor "${name}": header entry is not an object`);
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = dtypes.find((d) => d === entry.dtype);
    if (dtype === undefined) {
      const supported = dtypes.length === 1 ? `only ${dtypes[0]} is supported` : `supported: ${dtypes.join(', ')}`;
      throw new Error(`safetensors: tensor "${name}": unsupported dtype ${JSON.stringify(entry.dtype)} (${supported})`);
    }
    const elementBytes = DTYPES[dtype].BYTES_PER_ELEMENT;
    const count = checkShape(name, entry.shape);
    const offs = entry.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
    ) {
      throw new Error(`safetensors: tensor "${name}": data_offsets must be two non-negative integers, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new Error(`safetensors: tensor "${name}": data_offsets [${begin},${end}] end before begin`);
    if (end > dataLen) {
      throw new Error(
        `safetensors: tensor "${name}": data_offsets [${begin},${end}] out of range (byte buffer has ${dataLen} bytes; file truncated?)`,
      );
    }
    if (end - begin !== count * elementBytes) {
      throw new Error(
        `safetensors: tensor "${name}": data_offsets [${begin},${end}] span ${end - begin} bytes but shape ${shapeStr(entry.shape as number[])} ${dtype} needs ${count * elementBytes}`,
      );
    }
    specs.push({ name, dtype, shape: [...(entry.shape as number[])], begin, end });
  }

  // Non-overlapping: sort by begin and check neighbours (zero-size tensors overlap nothing).
  const sorted = specs.filter((s) => s.end > s.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.begin < prev.end) {
      throw new Error(
        `safetensors: tensors "${prev.name}" [${prev.begin},${prev.end}] and "${cur.name}" [${cur.begin},${cur.end}] overlap`,
      );
    }
  }

  // Return tensors in byte-buffer order (the order they were given to the encoder), not JSON key
  // order, which JavaScript reorders for integer-like names. Ties on begin put a zero-size tensor
  // before the tensor that starts where it sits; the sort is stable otherwise.
  specs.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const tensors = new Map<string, NamedArray<TensorData>>();
  for (const s of specs) {
    // A copy (not slice(): a Node Buffer's slice is a view), independent of the input and aligned.
    const copy = new Uint8Array(s.end - s.begin);
    copy.set(bytes.subarray(dataStart + s.begin, dataStart + s.end));
    swapElements(copy, DTYPES[s.dtype].BYTES_PER_ELEMENT);
    tensors.set(s.name, { shape: s.shape, data: new DTYPES[s.dtype](copy.buffer) });
  }
  return { tensors, metadata };
}
