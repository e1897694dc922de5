// Reading and writing gzip IDX files (unsigned bytes) for the data scripts, with node:zlib.
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';

/** Reads an unsigned-byte IDX file, gzip-compressed or not: { dims, data }. */
export function readIdx(path) {
  let bytes = readFileSync(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08) throw new Error(`${path}: not an unsigned-byte IDX file`);
  const ndims = bytes[3];
  const dims = [];
  for (let i = 0; i < ndims; i++) dims.push(bytes.readUInt32BE(4 + 4 * i));
  const header = 4 + 4 * ndims;
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + count) throw new Error(`${path}: size ${bytes.length} != ${header + count}`);
  return { dims, data: bytes.subarray(header) };
}

/** Writes `data` (unsigned bytes) with dimensions `dims` as a gzip IDX file; returns its size in bytes. */
export function writeIdx(path, dims, data) {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  // Node's gzip header has mtime 0 and no file name, so the output is byte-for-byte reproducible
  // for a given zlib version.
  const gz = gzipSync(Buffer.concat([header, data]), { level: 9 });
  writeFileSync(path, gz);
  return gz.length;
}
