// Pure TypeScript: the image augmentation fit() applies to each batch (src/paradigms/augment.ts).
import { describe, expect, test } from 'vitest';
import { imageAugmentation, shiftImage } from '../../src/paradigms/augment.js';

const size = { height: 4, width: 5, channels: 2 };
const LENGTH = 2 * 4 * 5;
// Distinct non-zero values, so that every output pixel says where it came from.
const image = Float32Array.from({ length: LENGTH }, (_, i) => i + 1);

/** The reference, written the other way round: each source pixel placed where it lands. */
function moved(src: Float32Array, dy: number, dx: number, flip: boolean): Float32Array {
  const { height, width, channels } = size;
  const out = new Float32Array(LENGTH);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const ty = y + dy;
        const tx = x + dx;
        if (ty < 0 || ty >= height || tx < 0 || tx >= width) continue;
        out[(c * height + ty) * width + (flip ? width - 1 - tx : tx)] = src[(c * height + y) * width + x]!;
      }
    }
  }
  return out;
}

describe('shiftImage', () => {
  test('moves every channel by (dy, dx), zero where nothing moves in, then mirrors', () => {
    for (const [dy, dx] of [[0, 0], [1, 0], [0, -2], [-1, 3], [3, -4], [4, 0]]) {
      for (const flip of [false, true]) {
        const out = new Float32Array(LENGTH).fill(NaN);
        shiftImage(image, out, size, dy!, dx!, flip);
        expect(Array.from(out), `dy ${dy} dx ${dx} flip ${flip}`).toEqual(Array.from(moved(image, dy!, dx!, flip)));
      }
    }
  });

  test('bad arguments: errors name what was wrong, and out is left as it was', () => {
    const out = new Float32Array(LENGTH).fill(7);
    expect(() => shiftImage(image, out, { ...size, width: 0 }, 0, 0, false)).toThrow(/shiftImage: width must be a positive integer, got 0/);
    expect(() => shiftImage(image.subarray(1), out, size, 0, 0, false)).toThrow(/shiftImage: a 2x4x5 image is 40 values; image has 39, out has 40/);
    expect(() => shiftImage(image, out, size, 0.5, 0, false)).toThrow(/shiftImage: shifts must be whole pixels, got dy 0.5, dx 0/);
    const shared = new Float32Array(LENGTH + 1);
    expect(() => shiftImage(shared.subarray(0, LENGTH), shared.subarray(1), size, 0, 0, false)).toThrow(/shiftImage: image and out overlap/);
    expect(Array.from(out)).toEqual(new Array(LENGTH).fill(7));
  });
});

describe('imageAugmentation', () => {
  /** The (dy, dx, flip) that turns `image` into `row`, or null when none within maxShift does. */
  function transformOf(row: Float32Array, maxShift: number): [number, number, boolean] | null {
    for (let dy = -maxShift; dy <= maxShift; dy++) {
      for (let dx = -maxShift; dx <= maxShift; dx++) {
        for (const flip of [false, true]) if (moved(image, dy, dx, flip).every((v, i) => v === row[i])) return [dy, dx, flip];
      }
    }
    return null;
  }

  test('each image of the batch gets its own shift within maxShift and, with flip, a mirror half the time; past the rows nothing changes', () => {
    const rows = 400;
    const batch = new Float32Array((rows + 1) * LENGTH);
    for (let r = 0; r <= rows; r++) batch.set(image, r * LENGTH);
    imageAugmentation({ ...size, maxShift: 1, flip: true, seed: 3 })(batch, rows);
    const seen = new Map<string, number>();
    for (let r = 0; r < rows; r++) {
      const t = transformOf(batch.subarray(r * LENGTH, (r + 1) * LENGTH), 1);
      expect(t, `row ${r}`).not.toBeNull();
      seen.set(String(t), (seen.get(String(t)) ?? 0) + 1);
    }
    // All 3 x 3 shifts, each mirrored or not: 18 outcomes, about 22 times each in 400 rows.
    expect(seen.size).toBe(18);
    for (const count of seen.values()) expect(count).toBeGreaterThan(5);
    expect(Array.from(batch.subarray(rows * LENGTH))).toEqual(Array.from(image));
  });

  test('seeded: the same seed gives the same batches; without flip nothing is mirrored', () => {
    const run = (seed: number) => {
      const batch = new Float32Array(20 * LENGTH);
      for (let r = 0; r < 20; r++) batch.set(image, r * LENGTH);
      const augment = imageAugmentation({ ...size, maxShift: 2, seed });
      augment(batch, 10);
      augment(batch.subarray(10 * LENGTH), 10);
      return batch;
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
    const batch = run(7);
    for (let r = 0; r < 20; r++) expect(transformOf(batch.subarray(r * LENGTH, (r + 1) * LENGTH), 2)?.[2]).toBe(false);
  });

  test('bad settings and batches: errors name what was wrong', () => {
    expect(() => imageAugmentation({ height: 28, width: 0 })).toThrow(/imageAugmentation: width must be a positive integer, got 0/);
    expect(() => imageAugmentation({ height: 4, width: 5, maxShift: 4 })).toThrow(/imageAugmentation: maxShift must be an integer from 0 to 3 \(below the image's 4x5\), got 4/);
    expect(() => imageAugmentation({ height: 4, width: 5, maxShift: 1.5 })).toThrow(/maxShift must be an integer/);
    expect(() => imageAugmentation({ ...size })(new Float32Array(LENGTH), 2)).toThrow(/imageAugmentation: 2 rows of 2x4x5 need 80 values, the batch has 40/);
    expect(() => imageAugmentation({ ...size })(new Float32Array(LENGTH), 1.5)).toThrow(/imageAugmentation: rows must be a non-negative integer, got 1.5/);
  });
});
