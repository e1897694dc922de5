// A safetensors file made by hand from its header text, for tests of what decoders refuse.

/** The 8-byte little-endian length of `header`, its UTF-8 bytes (as given: no padding added) and `data`. */
export function safetensorsFile(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
