// A drawing as MNIST's digits were made (LeCun et al.): the ink's bounding box scaled, keeping
// its aspect ratio, so that its longer side is 20 pixels (area averaging, which anti-aliases), then
// placed in a 28x28 field with its centre of mass at the centre. White ink on black, in [0, 1].

export const SIDE = 28;
const BOX = 20;
/** Ink below this (of 1) is background when finding the bounding box. */
const INK = 0.1;

/** Averages each run of `1 / scale` source values along one axis into `out` (fractional overlaps weighted). */
function resampleAxis(src: Float32Array, lines: number, length: number, stride: number, step: number, scale: number, outLength: number, out: Float32Array, outStride: number, outStep: number): void {
  for (let line = 0; line < lines; line++) {
    for (let o = 0; o < outLength; o++) {
      const a = o / scale;
      const b = Math.min(length, (o + 1) / scale);
      let sum = 0;
      for (let p = Math.floor(a); p < b; p++) sum += src[line * stride + p * step]! * (Math.min(p + 1, b) - Math.max(p, a));
      out[line * outStride + o * outStep] = b > a ? sum / (b - a) : 0;
    }
  }
}

/**
 * The 28x28 input for a `width` x `height` grey image (row-major, ink in [0, 1]), or null when it
 * holds no ink.
 */
export function mnistInput(gray: Float32Array, width: number, height: number): Float32Array | null {
  if (gray.length !== width * height) throw new Error(`mnistInput: ${gray.length} values for a ${width}x${height} image`);
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (gray[y * width + x]! < INK) continue;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  if (x1 < 0) return null;
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const scale = BOX / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * scale));
  const th = Math.max(1, Math.round(bh * scale));
  const box = new Float32Array(bw * bh);
  for (let y = 0; y < bh; y++) box.set(gray.subarray((y0 + y) * width + x0, (y0 + y) * width + x0 + bw), y * bw);
  // Rows first (bh lines of bw -> tw), then columns (tw lines of bh -> th).
  const rows = new Float32Array(tw * bh);
  resampleAxis(box, bh, bw, bw, 1, scale, tw, rows, tw, 1);
  const small = new Float32Array(tw * th);
  resampleAxis(rows, tw, bh, 1, tw, scale, th, small, 1, tw);
  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const v = small[y * tw + x]!;
      mass += v;
      mx += (x + 0.5) * v;
      my += (y + 0.5) * v;
    }
  }
  const ox = Math.round(SIDE / 2 - mx / mass);
  const oy = Math.round(SIDE / 2 - my / mass);
  const out = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const X = x + ox;
      const Y = y + oy;
      if (X >= 0 && X < SIDE && Y >= 0 && Y < SIDE) out[Y * SIDE + X] = Math.min(1, small[y * tw + x]!);
    }
  }
  return out;
}
