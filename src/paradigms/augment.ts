// Data augmentation for image classifiers: each training batch's images moved by a random whole
// number of pixels (the uncovered border zero, as MNIST-like images' background) and, where the
// classes allow it, mirrored left to right. Runs on the CPU on the batch fit() has just copied
// out of the data set, so the data set itself never changes (fit's `augment`).
import { uniformGenerator } from '../engine/random.js';

/** Transforms `rows` input rows of a batch in place. */
export type Augment = (inputs: Float32Array, rows: number) => void;

export interface ImageAugmentationOptions {
  /** Image size; a row is channels x height x width values (channels first). */
  height: number;
  width: number;
  channels?: number;
  /** Largest shift in pixels along each axis, drawn uniformly from -maxShift .. maxShift; default 2. */
  maxShift?: number;
  /** Mirror left to right with probability 1/2 (clothing, not digits); default false. */
  flip?: boolean;
  seed?: number;
}

interface ImageSize {
  height: number;
  width: number;
  channels: number;
}

function checkSize(op: string, size: ImageSize): void {
  for (const what of ['height', 'width', 'channels'] as const) {
    if (!Number.isInteger(size[what]) || size[what] < 1) throw new Error(`${op}: ${what} must be a positive integer, got ${size[what]}`);
  }
}

/**
 * out = image moved down by dy and right by dx pixels (zero where nothing moves in), then mirrored
 * left to right when `flip`; image and out are channels x height x width and must not overlap.
 */
export function shiftImage(image: Float32Array, out: Float32Array, size: ImageSize, dy: number, dx: number, flip: boolean): void {
  checkSize('shiftImage', size);
  const { height, width, channels } = size;
  const length = channels * height * width;
  if (image.length !== length || out.length !== length) {
    throw new Error(`shiftImage: a ${channels}x${height}x${width} image is ${length} values; image has ${image.length}, out has ${out.length}`);
  }
  if (!Number.isInteger(dy) || !Number.isInteger(dx)) throw new Error(`shiftImage: shifts must be whole pixels, got dy ${dy}, dx ${dx}`);
  if (image.buffer === out.buffer && image.byteOffset < out.byteOffset + out.byteLength && out.byteOffset < image.byteOffset + image.byteLength) {
    throw new Error('shiftImage: image and out overlap');
  }
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      const sy = y - dy;
      const row = (c * height + y) * width;
      for (let x = 0; x < width; x++) {
        const sx = (flip ? width - 1 - x : x) - dx;
        out[row + x] = sy >= 0 && sy < height && sx >= 0 && sx < width ? image[(c * height + sy) * width + sx]! : 0;
      }
    }
  }
}

/** A seeded Augment that shifts (and optionally mirrors) every image of a batch, each its own way. */
export function imageAugmentation(options: ImageAugmentationOptions): Augment {
  const { height, width, channels = 1, maxShift = 2, flip = false, seed = 0 } = options;
  const size = { height, width, channels };
  checkSize('imageAugmentation', size);
  if (!Number.isInteger(maxShift) || maxShift < 0 || maxShift >= Math.min(height, width)) {
    throw new Error(`imageAugmentation: maxShift must be an integer from 0 to ${Math.min(height, width) - 1} (below the image's ${height}x${width}), got ${maxShift}`);
  }
  const length = channels * height * width;
  const uniform = uniformGenerator(seed);
  const shift = () => Math.min(maxShift, Math.floor(uniform() * (2 * maxShift + 1)) - maxShift);
  const scratch = new Float32Array(length);
  return (inputs, rows) => {
    if (!Number.isInteger(rows) || rows < 0) throw new Error(`imageAugmentation: rows must be a non-negative integer, got ${rows}`);
    if (inputs.length < rows * length) throw new Error(`imageAugmentation: ${rows} rows of ${channels}x${height}x${width} need ${rows * length} values, the batch has ${inputs.length}`);
    for (let r = 0; r < rows; r++) {
      const image = inputs.subarray(r * length, (r + 1) * length);
      scratch.set(image);
      shiftImage(scratch, image, size, shift(), shift(), flip && uniform() < 0.5);
    }
  };
}
