// Data for multi-task learning: MultiMNIST-style images that hold two items, one task per item
// plus a regression task, and helpers for tasks whose labels are missing on some rows.
//
// The images are built as Sener & Koltun (2018) build MultiMNIST (isl-org/MultiObjectiveOptimization,
// multi_task/loaders/multi_mnist_loader.py), which Lin et al. (2019, Pareto MTL) reuse for
// Multi-Fashion and Multi-(Fashion+MNIST): on a 36x36 canvas, one 28x28 item at the top left
// (rows and columns 0..27), the other at the bottom right (6..33), the brighter of the two where
// they overlap, then the canvas resized to 28x28 by nearest neighbour.
import { FASHION_MNIST_CLASSES, FASHION_MNIST_IMAGE_SIZE, FASHION_MNIST_PIXELS, type ImageSet } from '../../engine/io/fashion-mnist.js';
import { MNIST_DIGIT_CLASSES } from '../../engine/io/mnist.js';
import { permutation, uniformGenerator } from '../../engine/random.js';
import { takeRows } from '../train.js';

export interface TaskLabels {
  kind: 'classification' | 'regression';
  /** classification: the number of classes; regression: 1 */
  width: number;
  /** one value per row: a class index (classification) or the target (regression) */
  values: Float32Array;
  /** 1 where the row is labelled for this task, 0 where its label is missing; absent: all labelled */
  mask?: Uint8Array;
  /** display names of the classes (classification) */
  classNames?: readonly string[];
}

export interface MultiTaskData {
  count: number;
  /** pixels per row: 784 */
  features: number;
  /** count x features, in [0, 1] */
  inputs: Float32Array;
  tasks: Record<string, TaskLabels>;
}

const ITEM = FASHION_MNIST_IMAGE_SIZE;
const CANVAS = 36;
/** Where the bottom-right item's top-left corner sits on the canvas (row and column). */
const BOTTOM_OFFSET = 6;
/**
 * For each row (and column) of the 28x28 output, the canvas row it takes: nearest neighbour at pixel
 * centres, floor((i + 0.5) * 36 / 28), as PIL's resize (behind scipy's imresize) does. The integer
 * form is exact: (2i + 1) * 36 / 56 is never a whole number, so no rounding tie exists.
 */
const CANVAS_INDEX = Int32Array.from({ length: ITEM }, (_, i) => Math.floor(((2 * i + 1) * CANVAS) / (2 * ITEM)));

/** Writes the 28x28 composite of image `top` of `topSet` (top left) and `bottom` of `bottomSet` (bottom right) at row `row` of `out`. */
function compose(topSet: Float32Array, top: number, bottomSet: Float32Array, bottom: number, out: Float32Array, row: number): void {
  const a = top * FASHION_MNIST_PIXELS;
  const b = bottom * FASHION_MNIST_PIXELS;
  const o = row * FASHION_MNIST_PIXELS;
  for (let y = 0; y < ITEM; y++) {
    const cy = CANVAS_INDEX[y]!;
    const by = cy - BOTTOM_OFFSET;
    for (let x = 0; x < ITEM; x++) {
      const cx = CANVAS_INDEX[x]!;
      const bx = cx - BOTTOM_OFFSET;
      // Pixels are >= 0, so 0 off an item and the max on the overlap give the reference's canvas.
      const fromTop = cy < ITEM && cx < ITEM ? topSet[a + cy * ITEM + cx]! : 0;
      const fromBottom = by >= 0 && bx >= 0 && by < ITEM && bx < ITEM ? bottomSet[b + by * ITEM + bx]! : 0;
      out[o + y * ITEM + x] = Math.max(fromTop, fromBottom);
    }
  }
}

function checkSource(op: string, what: string, set: ImageSet): void {
  if (!(set.count >= 1) || set.images.length !== set.count * FASHION_MNIST_PIXELS || set.labels.length !== set.count) {
    throw new Error(
      `${op}: ${what} must hold at least one 28x28 image with a label each; got count ${set.count}, ${set.images.length} pixels, ${set.labels.length} labels`,
    );
  }
}

function checkSeed(op: string, seed: number): void {
  if (!Number.isInteger(seed)) throw new Error(`${op}: seed must be an integer, got ${seed}`);
}

/**
 * `count` composites of a top-left item from `topSet` and a bottom-right item from `bottomSet`:
 * the top-left items are a seeded permutation of `topSet` (repeated when count exceeds it), each
 * paired with a seeded uniform choice from `bottomSet` (as the reference pairs every image with a
 * random other, of any class). Tasks: the two items' classes, and `ink`, the mean of the top-left
 * item's own 28x28 pixels.
 */
function composite(
  op: string,
  topSet: ImageSet,
  bottomSet: ImageSet,
  count: number,
  seed: number,
  tasks: { top: string; topClasses: readonly string[]; bottom: string; bottomClasses: readonly string[] },
): MultiTaskData {
  if (!Number.isInteger(count) || count < 1) throw new Error(`${op}: count must be a positive integer, got ${count}`);
  checkSeed(op, seed);
  const topOrder = permutation(topSet.count, seed);
  // A second stream, decorrelated from the permutation's by a different seed.
  const nextBottom = uniformGenerator(seed ^ 0x5bd1e995);
  const inputs = new Float32Array(count * FASHION_MNIST_PIXELS);
  const topLabels = new Float32Array(count);
  const bottomLabels = new Float32Array(count);
  const ink = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const top = topOrder[i % topSet.count]!;
    const bottom = Math.floor(nextBottom() * bottomSet.count);
    compose(topSet.images, top, bottomSet.images, bottom, inputs, i);
    topLabels[i] = topSet.labels[top]!;
    bottomLabels[i] = bottomSet.labels[bottom]!;
    let sum = 0;
    for (let p = top * FASHION_MNIST_PIXELS; p < (top + 1) * FASHION_MNIST_PIXELS; p++) sum += topSet.images[p]!;
    ink[i] = sum / FASHION_MNIST_PIXELS;
  }
  return {
    count,
    features: FASHION_MNIST_PIXELS,
    inputs,
    tasks: {
      [tasks.top]: { kind: 'classification', width: tasks.topClasses.length, values: topLabels, classNames: tasks.topClasses },
      [tasks.bottom]: { kind: 'classification', width: tasks.bottomClasses.length, values: bottomLabels, classNames: tasks.bottomClasses },
      ink: { kind: 'regression', width: 1, values: ink },
    },
  };
}

/**
 * Multi-Fashion: two Fashion-MNIST items per image, both from `source` (one split of it). Tasks:
 * `left` (the top-left item's class), `right` (the bottom-right item's class) and `ink` (the mean
 * pixel of the top-left item's own image, in [0, 1]). Same seed, same data, bit for bit.
 */
export function multiFashion(source: ImageSet, count: number, options: { seed?: number } = {}): MultiTaskData {
  checkSource('multiFashion', 'source', source);
  return composite('multiFashion', source, source, count, options.seed ?? 1, {
    top: 'left',
    topClasses: FASHION_MNIST_CLASSES,
    bottom: 'right',
    bottomClasses: FASHION_MNIST_CLASSES,
  });
}

/**
 * Multi-(Fashion+MNIST): a Fashion-MNIST item at the top left and a handwritten digit at the bottom
 * right. Tasks: `clothing` (the item's class), `digit` (the digit) and `ink` (the mean pixel of the
 * clothing item's own image, in [0, 1]). Same seed, same data, bit for bit.
 */
export function multiFashionMnist(fashion: ImageSet, digits: ImageSet, count: number, options: { seed?: number } = {}): MultiTaskData {
  checkSource('multiFashionMnist', 'fashion', fashion);
  checkSource('multiFashionMnist', 'digits', digits);
  return composite('multiFashionMnist', fashion, digits, count, options.seed ?? 1, {
    top: 'clothing',
    topClasses: FASHION_MNIST_CLASSES,
    bottom: 'digit',
    bottomClasses: MNIST_DIGIT_CLASSES,
  });
}

function taskOf(op: string, data: MultiTaskData, task: string): TaskLabels {
  const labels = Object.hasOwn(data.tasks, task) ? data.tasks[task] : undefined;
  if (!labels) throw new Error(`${op}: no task ${JSON.stringify(task)}; the tasks are ${Object.keys(data.tasks).join(', ')}`);
  return labels;
}

/**
 * A copy of `data` in which only a seeded `keepFraction` of the rows labelled for `task` keep their
 * label (rounded to whole rows; the mask is 0 on the others). Inputs and the other tasks are shared,
 * not copied, and left as they are.
 */
export function dropLabels(data: MultiTaskData, task: string, keepFraction: number, options: { seed?: number } = {}): MultiTaskData {
  const labels = taskOf('dropLabels', data, task);
  if (!(keepFraction >= 0 && keepFraction <= 1)) throw new Error(`dropLabels: keepFraction must be in [0, 1], got ${keepFraction}`);
  const seed = options.seed ?? 1;
  checkSeed('dropLabels', seed);
  const labelled: number[] = [];
  for (let i = 0; i < data.count; i++) if (!labels.mask || labels.mask[i] === 1) labelled.push(i);
  const order = permutation(labelled.length, seed);
  const mask = new Uint8Array(data.count);
  const keep = Math.round(keepFraction * labelled.length);
  for (let k = 0; k < keep; k++) mask[labelled[order[k]!]!] = 1;
  return { ...data, tasks: { ...data.tasks, [task]: { ...labels, mask } } };
}

/** The number of labelled rows of each task. */
export function taskCounts(data: MultiTaskData): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [name, labels] of Object.entries(data.tasks)) {
    counts[name] = labels.mask ? labels.mask.reduce((n, m) => n + (m === 1 ? 1 : 0), 0) : data.count;
  }
  return counts;
}

/** The rows `indices` of `data` (in that order, repeats allowed), every task's labels and masks with them. */
export function takeMultiTaskRows(data: MultiTaskData, indices: ArrayLike<number>): MultiTaskData {
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= data.count) {
      throw new Error(`takeMultiTaskRows: index ${i} at position ${k} is not a row of 0..${data.count - 1}`);
    }
  }
  const tasks: Record<string, TaskLabels> = {};
  for (const [name, labels] of Object.entries(data.tasks)) {
    tasks[name] = {
      ...labels,
      values: takeRows(labels.values, 1, indices),
      ...(labels.mask && { mask: Uint8Array.from(indices, (i) => labels.mask![i]!) }),
    };
  }
  return { count: indices.length, features: data.features, inputs: takeRows(data.inputs, data.features, indices), tasks };
}
