// The teach page's drawing -> 28x28 input (demos/teach/drawing.ts), against layouts worked out by
// hand: the ink's bounding box scaled to 20 pixels on its longer side by area averaging, then
// placed with its centre of mass at the centre of the 28x28 field.
import { describe, expect, test } from 'vitest';
import { mnistInput, SIDE } from '../../demos/teach/drawing.js';

/** A width x height image with `value(x, y)` inside the rectangle [x0, x0 + w) x [y0, y0 + h), 0 elsewhere. */
function image(width: number, height: number, x0: number, y0: number, w: number, h: number, value: (x: number, y: number) => number = () => 1): Float32Array {
  const out = new Float32Array(width * height);
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) out[y * width + x] = value(x - x0, y - y0);
  return out;
}

/** The rectangle of 28x28 pixels where `input` is not 0, as [left, top, right, bottom) . */
function inked(input: Float32Array): [number, number, number, number] {
  let [l, t, r, b] = [SIDE, SIDE, 0, 0];
  for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) if (input[y * SIDE + x]! > 0) [l, t, r, b] = [Math.min(l, x), Math.min(t, y), Math.max(r, x + 1), Math.max(b, y + 1)];
  return [l, t, r, b];
}

describe('mnistInput', () => {
  test('a filled square anywhere becomes a 20x20 block of ones in the middle', () => {
    const x = mnistInput(image(280, 280, 17, 150, 100, 100), 280, 280)!;
    expect(inked(x)).toEqual([4, 4, 24, 24]);
    expect(x.reduce((a, v) => a + v, 0)).toBeCloseTo(400, 4);
  });

  test('a 200x100 rectangle keeps its aspect: 20x10, centred', () => {
    const x = mnistInput(image(280, 280, 40, 30, 200, 100), 280, 280)!;
    expect(inked(x)).toEqual([4, 9, 24, 19]);
    expect(x.reduce((a, v) => a + v, 0)).toBeCloseTo(200, 4);
  });

  test('area averaging and the centre of mass: half-grey ink shifts the box towards the dark side', () => {
    // 40x40 ink, left half 1, right half 0.5: scaled by 1/2 exactly, so 10 columns of 1 then 10 of
    // 0.5. Centre of mass x = (1 * sum(0.5..9.5) + 0.5 * sum(10.5..19.5)) / (10 + 5) = 125 / 15 = 8.33
    // (every row alike), so the box starts at column round(14 - 8.33) = 6 (a uniform box: 4); y is symmetric.
    const x = mnistInput(image(100, 100, 30, 30, 40, 40, (i) => (i < 20 ? 1 : 0.5)), 100, 100)!;
    expect(inked(x)).toEqual([6, 4, 26, 24]);
    expect(x[10 * SIDE + 6]).toBeCloseTo(1, 6);
    expect(x[10 * SIDE + 15]).toBeCloseTo(1, 6);
    expect(x[10 * SIDE + 16]).toBeCloseTo(0.5, 6);
    expect(x[10 * SIDE + 25]).toBeCloseTo(0.5, 6);
  });

  test('a fractional scale weights the source pixels by their overlap', () => {
    // 30 source columns into 20: target column 0 covers [0, 1.5): all of column 0, half of column 1.
    const x = mnistInput(image(60, 60, 10, 10, 30, 30, (i) => (i === 1 ? 0.4 : 1)), 60, 60)!;
    const [left, top] = inked(x);
    expect(x[top * SIDE + left]).toBeCloseTo((1 + 0.5 * 0.4) / 1.5, 6);
  });

  test('a blank drawing is null, and a size that does not match the values is refused', () => {
    expect(mnistInput(new Float32Array(100), 10, 10)).toBeNull();
    expect(() => mnistInput(new Float32Array(99), 10, 10)).toThrow('mnistInput: 99 values for a 10x10 image');
  });
});
