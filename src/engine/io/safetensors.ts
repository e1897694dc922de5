// safetensors encoder/decoder (F32 only), pure TypeScript, no GPU code.
//
// Layout (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of UTF-8 JSON header][byte buffer]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} with offsets
// relative to the start of the byte buffer; the optional "__metadata__" entry is a string->string
// map. The header is padded with spaces so the byte buffer starts 8-byte aligned.

export interface NamedArray {
  shape: number[];
  data: Float32Array;
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

/** Encodes F32 tensors (in the given order) and optional string metadata as a safetensors file. */
export function encodeSafetensors(
  tensors: Map<string, NamedArray> | Record<string, NamedArray>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries: [string, NamedArray][] = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);

  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata value for "${k}" is not a string`);
      meta[k] = v;
    }
    header[METADATA_KEY] = meta;
  }

  let offset = 0;
  for (const [name, t] of entries) {
    if (name === METADATA_KEY) throw new Error(`safetensors: "${METADATA_KEY}" is reserved and cannot be a tensor name`);
    if (!(t.data instanceof Float32Array)) throw new Error(`safetensors: tensor "${name}": data is not a Float32Array`);
    const n = checkShape(name, t.shape);
    if (n !== t.data.length) {
      throw new Error(
        `safetensors: tensor "${name}": shape ${shapeStr(t.shape)} has ${n} elements but data has ${t.data.length}`,
      );
    }
    const bytes = n * 4;
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);

  let pos = 8 + headerLen;
  for (const [, t] of entries) {
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    } else {
      for (let i = 0; i < t.data.length; i++) view.setFloat32(pos + i * 4, t.data[i]!, true);
    }
    pos += t.data.length * 4;
  }
  return out;
}

/** Decodes a safetensors file holding only F32 tensors. The returned arrays are copies. */
export function decodeSafetensors(bytes: Uint8Array): {
  tensors: Map<string, NamedArray>;
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
  if (headerLen > MAX_HEADER_BYTES) throw new Error(`safetensors: header length ${headerLen} exceeds ${MAX_HEADER_BYTES}`);
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
  const specs: { name: string; shape: number[]; begin: number; end: number }[] = [];

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
    if (entry.dtype !== 'F32') {
      throw new Error(`safetensors: tensor "${name}": unsupported dtype ${JSON.stringify(entry.dtype)} (only F32 is supported)`);
    }
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
    if (end - begin !== count * 4) {
      throw new Error(
        `safetensors: tensor "${name}": data_offsets [${begin},${end}] span ${end - begin} bytes but shape ${shapeStr(entry.shape as number[])} F32 needs ${count * 4}`,
      );
    }
    specs.push({ name, shape: [...(entry.shape as number[])], begin, end });
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
  const tensors = new Map<string, NamedArray>();
  for (const s of specs) {
    const n = (s.end - s.begin) / 4;
    const abs = bytes.byteOffset + dataStart + s.begin;
    let data: Float32Array;
    if (LITTLE_ENDIAN_HOST) {
      // slice() copies, so the result is independent of the input and always 4-byte aligned.
      data = new Float32Array(bytes.buffer.slice(abs, abs + n * 4));
    } else {
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(dataStart + s.begin + i * 4, true);
    }
    tensors.set(s.name, { shape: s.shape, data });
  }
  return { tensors, metadata };
}
