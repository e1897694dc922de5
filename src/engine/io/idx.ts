// IDX file parsing (the MNIST / Fashion-MNIST container format) and gzip decompression with the
// web-standard DecompressionStream, so the same code runs in browsers and in Node 18+.
//
// IDX layout: bytes 0x00 0x00 <type> <ndims>, then ndims big-endian u32 dimensions, then the
// data in row-major order. Only type 0x08 (unsigned byte) is supported.

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const IDX_TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'short',
  0x0c: 'int',
  0x0d: 'float',
  0x0e: 'double',
};

/** Parses an (uncompressed) IDX file of unsigned bytes. The returned data is a copy. */
export function parseIdx(bytes: Uint8Array): IdxArray {
  if (bytes.length < 4) throw new Error(`idx: file too short (${bytes.length} bytes); need 4 for the magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const hint = bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (file is gzip-compressed; use parseIdxMaybeGzip)' : '';
    throw new Error(
      `idx: bad magic number: first two bytes are 0x${hex(bytes[0]!)} 0x${hex(bytes[1]!)}, expected 0x00 0x00${hint}`,
    );
  }
  const type = bytes[2]!;
  if (type !== 0x08) {
    const name = IDX_TYPE_NAMES[type];
    throw new Error(
      `idx: unsupported data type 0x${hex(type)}${name ? ` (${name})` : ' (unknown)'}; only 0x08 (unsigned byte) is supported`,
    );
  }
  const ndims = bytes[3]!;
  if (ndims === 0) throw new Error('idx: number of dimensions is 0');
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < headerLen) {
    throw new Error(`idx: truncated header: ${ndims} dimensions need ${headerLen} bytes, file has ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  if (!Number.isSafeInteger(count)) throw new Error(`idx: dimensions [${dims.join(',')}] are too large`);
  const available = bytes.length - headerLen;
  if (available < count) {
    throw new Error(
      `idx: truncated data: dimensions [${dims.join(',')}] need ${count} bytes after the ${headerLen}-byte header, file has ${available}`,
    );
  }
  if (available > count) {
    throw new Error(
      `idx: ${available - count} unexpected trailing bytes after the data for dimensions [${dims.join(',')}]`,
    );
  }
  return { dims, data: bytes.slice(headerLen, headerLen + count) };
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

/** Decompresses gzip data with DecompressionStream('gzip'). Rejects with a clear error on bad input. */
export async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  if (typeof DecompressionStream === 'undefined') {
    throw new Error('gunzip: DecompressionStream is not available in this environment');
  }
  // Copy into a fresh ArrayBuffer-backed array: Blob wants ArrayBuffer (not shared) views.
  const input = new Uint8Array(bytes);
  try {
    const stream = new Blob([input]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new Error(`gunzip: invalid or truncated gzip data (${(e as Error)?.message ?? String(e)})`);
  }
}

/** True when the bytes start with the gzip magic number 0x1f 0x8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Parses an IDX file, gunzipping it first when it starts with the gzip magic number. */
export async function parseIdxMaybeGzip(bytes: Uint8Array): Promise<IdxArray> {
  return parseIdx(isGzip(bytes) ? await gunzip(bytes) : bytes);
}
