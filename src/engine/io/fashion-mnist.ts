// Fashion-MNIST loader (Zalando Research, MIT license). Bytes come from a caller-supplied
// fetchBytes callback, so this works with browser fetch() and with Node's fs alike.
import { parseIdxMaybeGzip } from './idx.js';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export interface ImageSet {
  /** count * 784 pixels, row-major 28x28 per image, scaled to [0, 1]. */
  images: Float32Array;
  /** count labels in 0..9 (class indices, e.g. into FASHION_MNIST_CLASSES). */
  labels: Uint8Array;
  count: number;
}

export const FASHION_MNIST_IMAGE_SIZE = 28;
export const FASHION_MNIST_PIXELS = FASHION_MNIST_IMAGE_SIZE * FASHION_MNIST_IMAGE_SIZE;

/** The gzip IDX file names of a split, as distributed upstream. */
export function fashionMnistFiles(split: 'train' | 'test'): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  return { images: `${prefix}-images-idx3-ubyte.gz`, labels: `${prefix}-labels-idx1-ubyte.gz` };
}

/** Loads one split of Fashion-MNIST (or any subset of it stored with the same file names). */
export async function loadFashionMnist(
  fetchBytes: (file: string) => Promise<Uint8Array>,
  split: 'train' | 'test',
): Promise<ImageSet> {
  if (split !== 'train' && split !== 'test') throw new Error(`fashion-mnist: unknown split ${JSON.stringify(split)}`);
  return loadImageSet(fetchBytes, fashionMnistFiles(split), 'fashion-mnist');
}

/**
 * Reads a pair of gzip (or plain) IDX files, 28x28 images and their labels in 0..9, checking both;
 * errors start with `source` and name the file at fault.
 */
export async function loadImageSet(
  fetchBytes: (file: string) => Promise<Uint8Array>,
  files: { images: string; labels: string },
  source: string,
): Promise<ImageSet> {
  const [imgBytes, lblBytes] = await Promise.all([fetchBytes(files.images), fetchBytes(files.labels)]);
  const [img, lbl] = await Promise.all([
    parseIdxMaybeGzip(imgBytes).catch((e: Error) => {
      throw new Error(`${source}: ${files.images}: ${e.message}`);
    }),
    parseIdxMaybeGzip(lblBytes).catch((e: Error) => {
      throw new Error(`${source}: ${files.labels}: ${e.message}`);
    }),
  ]);

  const S = FASHION_MNIST_IMAGE_SIZE;
  if (img.dims.length !== 3 || img.dims[1] !== S || img.dims[2] !== S) {
    throw new Error(`${source}: ${files.images}: expected dims [n,${S},${S}], got [${img.dims.join(',')}]`);
  }
  if (lbl.dims.length !== 1) {
    throw new Error(`${source}: ${files.labels}: expected dims [n], got [${lbl.dims.join(',')}]`);
  }
  const count = img.dims[0]!;
  if (lbl.dims[0] !== count) {
    throw new Error(`${source}: ${count} images in ${files.images} but ${lbl.dims[0]} labels in ${files.labels}`);
  }
  for (let i = 0; i < count; i++) {
    const l = lbl.data[i]!;
    if (l > 9) throw new Error(`${source}: ${files.labels}: label ${l} at index ${i} is out of range 0..9`);
  }

  const images = new Float32Array(img.data.length);
  for (let i = 0; i < images.length; i++) images[i] = img.data[i]! / 255;
  return { images, labels: lbl.data, count };
}
