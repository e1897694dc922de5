// Task splits of a labelled data set: the rows of some classes, relabelled 0..k-1, optionally
// only a few labelled examples per class (the few-shot target task of transfer learning).
import { permutation } from '../engine/random.js';
import { takeRows, type ClassificationData } from './train.js';

export interface ClassSplit {
  /** The selected rows, labels renumbered by their class's position in `classes`. */
  data: ClassificationData;
  /** The other rows of those classes (same labelling): a pool of unlabelled data. */
  rest: ClassificationData;
}

/**
 * The rows of `data` whose label is in `classes`; with `perClass`, a seeded random choice of that
 * many rows per class (the rest go to `rest`). Rows keep their order within the data.
 */
export function classSplit(data: ClassificationData, classes: readonly number[], options: { perClass?: number; seed?: number } = {}): ClassSplit {
  const position = new Map(classes.map((c, i) => [c, i]));
  if (position.size !== classes.length || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= data.classes)) {
    throw new Error(`classSplit: classes [${classes.join(',')}] must be distinct integers in 0..${data.classes - 1}`);
  }
  const byClass = classes.map(() => [] as number[]);
  for (let i = 0; i < data.count; i++) {
    const p = position.get(data.labels[i]!);
    if (p !== undefined) byClass[p]!.push(i);
  }
  const chosen = new Set<number>();
  byClass.forEach((rows, p) => {
    const n = options.perClass ?? rows.length;
    if (!Number.isInteger(n) || n < 1 || n > rows.length) {
      throw new Error(`classSplit: ${n} examples per class asked, class ${classes[p]} has ${rows.length}`);
    }
    const order = permutation(rows.length, (options.seed ?? 1) * 16 + p);
    for (let k = 0; k < n; k++) chosen.add(rows[order[k]!]!);
  });
  const pick = (keep: (i: number) => boolean): ClassificationData => {
    const rows = byClass.flat().filter(keep).sort((a, b) => a - b);
    const labels = Uint8Array.from(rows, (i) => position.get(data.labels[i]!)!);
    return { inputs: takeRows(data.inputs, data.features, rows), labels, count: rows.length, features: data.features, classes: classes.length };
  };
  return { data: pick((i) => chosen.has(i)), rest: pick((i) => !chosen.has(i)) };
}
