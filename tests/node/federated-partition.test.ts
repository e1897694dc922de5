import { describe, expect, it } from 'vitest';
import { dirichletGenerator, gammaGenerator, permutation, uniformGenerator } from '../../src/engine/random.js';
import { clientData, dirichletPartition, iidPartition, labelHistogram, naturalPartition, shardPartition, type Partition } from '../../src/paradigms/federated/partition.js';

/** MNIST's training-set class counts (sum 60,000): unequal, none a multiple of 300. */
const MNIST_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];

/** Labels with `counts[k]` rows of class k, in a seeded random order. */
function syntheticLabels(counts: readonly number[], seed: number): Uint8Array {
  const sorted = counts.flatMap((n, k) => new Array<number>(n).fill(k));
  const order = permutation(sorted.length, seed);
  return Uint8Array.from(order, (i) => sorted[i]!);
}
const labels = syntheticLabels(MNIST_COUNTS, 7);
const equalLabels = syntheticLabels(new Array(10).fill(6000), 8);

/** Every row at most once; `all`: every row exactly once. Each client's rows ascending. */
function checkPartition(partition: Partition, count: number, all: boolean): void {
  const seen = new Uint8Array(count);
  const problems: string[] = [];
  partition.forEach((rows, c) => {
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k]!;
      if (i >= count) problems.push(`client ${c}: row ${i} out of range`);
      else if (seen[i]) problems.push(`client ${c}: row ${i} held twice`);
      if (k > 0 && i <= rows[k - 1]!) problems.push(`client ${c}: rows not ascending at position ${k}`);
      seen[i] = 1;
    }
  });
  if (all && !seen.every((s) => s === 1)) problems.push(`rows left out: ${seen.reduce((n, s) => n + 1 - s, 0)}`);
  expect(problems.slice(0, 5)).toEqual([]);
}

const same = (a: Partition, b: Partition) => a.length === b.length && a.every((rows, c) => rows.length === b[c]!.length && rows.every((i, k) => i === b[c]![k]));

/** Total variation distance between each non-empty client's label distribution and the global one, averaged over clients. */
function meanTotalVariation(histogram: Uint32Array[], global: readonly number[]): number {
  const total = global.reduce((a, b) => a + b, 0);
  let sum = 0;
  let clients = 0;
  for (const h of histogram) {
    const n = h.reduce((a, b) => a + b, 0);
    if (n === 0) continue;
    let tv = 0;
    h.forEach((v, k) => (tv += Math.abs(v / n - global[k]! / total)));
    sum += tv / 2;
    clients++;
  }
  return sum / clients;
}

describe('iidPartition', () => {
  it('is seeded, uses every row once, and sizes differ by at most one', () => {
    const a = iidPartition(60_003, 10, { seed: 3 });
    checkPartition(a, 60_003, true);
    expect(a.map((r) => r.length)).toEqual([6001, 6001, 6001, 6000, 6000, 6000, 6000, 6000, 6000, 6000]);
    expect(same(a, iidPartition(60_003, 10, { seed: 3 }))).toBe(true);
    expect(same(a, iidPartition(60_003, 10, { seed: 4 }))).toBe(false);
  });

  it("gives each client the global label mix, within 5 standard errors of its sample size", () => {
    const partition = iidPartition(labels.length, 10, { seed: 1 });
    const histogram = labelHistogram(labels, partition, 10);
    histogram.forEach((h, c) => {
      const n = partition[c]!.length;
      h.forEach((v, k) => {
        const p = MNIST_COUNTS[k]! / labels.length;
        expect(Math.abs(v / n - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
      });
    });
  });

  it('refuses more clients than rows', () => {
    expect(() => iidPartition(5, 6)).toThrow(/count must be an integer >= 6/);
  });
});

/**
 * The McMahan construction written out independently: rows bucketed by label (a counting sort,
 * stable by construction), shards of count / shards consecutive rows, and client c holding the
 * shards permutation(shards, seed)[2c] and [2c + 1], as the partitioner documents.
 */
function referenceShardHistogram(labels: Uint8Array, clients: number, shards: number, perClient: number, seed: number): number[][] {
  const buckets: number[][] = Array.from({ length: 10 }, () => []);
  labels.forEach((y, i) => buckets[y]!.push(i));
  const sortedLabels = buckets.flatMap((rows, y) => rows.map(() => y));
  const size = labels.length / shards;
  const order = permutation(shards, seed);
  return Array.from({ length: clients }, (_, c) => {
    const h = new Array<number>(10).fill(0);
    for (let s = 0; s < perClient; s++) for (let r = 0; r < size; r++) h[sortedLabels[order[c * perClient + s]! * size + r]!]!++;
    return h;
  });
}

describe('shardPartition', () => {
  const mcMahan = { shards: 200, shardsPerClient: 2, seed: 5 };

  it('McMahan setting on single-class shards: 600 rows and at most 2 classes per client, most holding exactly 2', () => {
    const partition = shardPartition(equalLabels, 100, mcMahan);
    checkPartition(partition, 60_000, true);
    expect(partition.every((rows) => rows.length === 600)).toBe(true);
    const classesHeld = labelHistogram(equalLabels, partition, 10).map((h) => h.filter((v) => v > 0).length);
    expect(Math.max(...classesHeld)).toBe(2);
    // A client's two shards share a class with probability 19/199 (20 shards per class, 199 others): about 90 of 100 hold 2.
    expect(classesHeld.filter((n) => n === 2).length).toBeGreaterThan(70);
  });

  it('matches an independent re-implementation on MNIST-like class counts', () => {
    const partition = shardPartition(labels, 100, mcMahan);
    checkPartition(partition, 60_000, true);
    const histogram = labelHistogram(labels, partition, 10).map((h) => [...h]);
    expect(histogram).toEqual(referenceShardHistogram(labels, 100, 200, 2, 5));
    // Shards of 300 rows are smaller than every class, so each spans at most 2 classes.
    expect(histogram.every((h) => h.filter((v) => v > 0).length <= 4)).toBe(true);
  });

  it('keeps a client\'s rows from shardsPerClient blocks of the label-sorted order, sorted by label then index', () => {
    const partition = shardPartition(labels, 100, mcMahan);
    const sorted = [...labels.keys()].sort((a, b) => labels[a]! - labels[b]! || a - b);
    const position = new Uint32Array(labels.length);
    sorted.forEach((row, p) => (position[row] = p));
    for (const rows of partition) {
      const blocks = new Set(Array.from(rows, (i) => Math.floor(position[i]! / 300)));
      expect(blocks.size).toBe(2);
    }
  });

  it('is seeded, and leaves surplus shards unassigned', () => {
    expect(same(shardPartition(labels, 100, mcMahan), shardPartition(labels, 100, mcMahan))).toBe(true);
    expect(same(shardPartition(labels, 100, mcMahan), shardPartition(labels, 100, { ...mcMahan, seed: 6 }))).toBe(false);
    const partial = shardPartition(labels, 50, mcMahan);
    checkPartition(partial, 60_000, false);
    expect(partial.reduce((n, r) => n + r.length, 0)).toBe(30_000);
    // Defaults: shardsPerClient 2, shards = clients * 2.
    expect(shardPartition(labels, 10).map((r) => r.length)).toEqual(new Array(10).fill(6000));
  });

  it('refuses too few shards and counts that do not divide', () => {
    expect(() => shardPartition(labels, 101, mcMahan)).toThrow(/101 clients x 2 shards each need 202 shards, only 200 exist/);
    expect(() => shardPartition(labels.subarray(0, 59_999), 100, mcMahan)).toThrow(/59999 rows do not cut into 200 equal shards \(199 left over\).*drop 199 rows/);
  });
});

describe('Gamma and Dirichlet generators', () => {
  it.each([0.1, 0.5, 1, 2.5, 10])('Gamma(%d): sample mean and variance within 5 standard errors of shape', (shape) => {
    const n = 100_000;
    const next = gammaGenerator(shape, uniformGenerator(11));
    let sum = 0;
    let sum2 = 0;
    const draws = new Float64Array(n);
    for (let i = 0; i < n; i++) sum += draws[i] = next();
    const mean = sum / n;
    for (const x of draws) sum2 += (x - mean) ** 2;
    const variance = sum2 / (n - 1);
    expect(draws.every((x) => x > 0 && Number.isFinite(x))).toBe(true);
    // Var of the mean: shape / n; of the sample variance: (mu4 - sigma^4) / n with mu4 = 3 shape (shape + 2).
    expect(Math.abs(mean - shape)).toBeLessThan(5 * Math.sqrt(shape / n));
    expect(Math.abs(variance - shape)).toBeLessThan(5 * Math.sqrt((2 * shape * shape + 6 * shape) / n));
  });

  it('Dirichlet draws sum to 1, even for tiny alpha, with mean alpha / sum(alpha)', () => {
    const alpha = [0.2, 1, 3];
    const draw = dirichletGenerator(alpha, uniformGenerator(12));
    const n = 20_000;
    const mean = [0, 0, 0];
    for (let i = 0; i < n; i++) {
      const p = draw();
      expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
      p.forEach((v, k) => (mean[k]! += v / n));
    }
    // Var(p_k) = a_k (A - a_k) / (A^2 (A + 1)), A = sum(alpha) = 4.2.
    alpha.forEach((a, k) => expect(Math.abs(mean[k]! - a / 4.2)).toBeLessThan(5 * Math.sqrt((a * (4.2 - a)) / (4.2 * 4.2 * 5.2) / n)));
    const tiny = dirichletGenerator(new Array(100).fill(0.001), uniformGenerator(13))();
    expect(Math.abs(tiny.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
    expect(tiny.every((v) => Number.isFinite(v))).toBe(true);
  });
});

describe('dirichletPartition', () => {
  it('is seeded and uses every row once, every client holding at least minSize rows', () => {
    const a = dirichletPartition(labels, 20, { alpha: 0.1, seed: 2 });
    checkPartition(a, 60_000, true);
    expect(Math.min(...a.map((r) => r.length))).toBeGreaterThanOrEqual(10);
    expect(same(a, dirichletPartition(labels, 20, { alpha: 0.1, seed: 2 }))).toBe(true);
    expect(same(a, dirichletPartition(labels, 20, { alpha: 0.1, seed: 3 }))).toBe(false);
  });

  it('moves each client towards the global label mix as alpha grows', () => {
    const tv = [0.1, 1, 100].map((alpha) => meanTotalVariation(labelHistogram(labels, dirichletPartition(labels, 20, { alpha, seed: 1 }), 10), MNIST_COUNTS));
    expect(tv[0]).toBeGreaterThan(tv[1]! + 0.1);
    expect(tv[1]).toBeGreaterThan(tv[2]! + 0.1);
    expect(tv[2]).toBeLessThan(0.1);
  });

  it('self-balancing keeps client sizes closer to count / clients', () => {
    const spread = (p: Partition) => Math.max(...p.map((r) => r.length)) - Math.min(...p.map((r) => r.length));
    const plain = dirichletPartition(labels, 10, { alpha: 0.5, seed: 4 });
    const balanced = dirichletPartition(labels, 10, { alpha: 0.5, seed: 4, selfBalancing: true });
    checkPartition(balanced, 60_000, true);
    expect(spread(balanced)).toBeLessThan(spread(plain));
  });

  it('accepts one alpha per client and refuses bad ones', () => {
    checkPartition(dirichletPartition(labels, 3, { alpha: [1, 2, 3] }), 60_000, true);
    expect(() => dirichletPartition(labels, 3, { alpha: [1, 2] })).toThrow(/alpha holds 2 values for 3 clients/);
    expect(() => dirichletPartition(labels, 3, { alpha: 0 })).toThrow(/alpha must be positive/);
  });

  it('gives up with a clear error when minSize cannot be met in maxRetries redraws', () => {
    const small = labels.subarray(0, 2000);
    expect(() => dirichletPartition(small, 100, { alpha: 0.01, minSize: 15, maxRetries: 3 })).toThrow(/after 4 draws some client still held fewer than 15 rows.*raise alpha/);
    expect(() => dirichletPartition(small, 100, { alpha: 1, minSize: 21 })).toThrow(/100 clients of at least 21 rows need 2100 rows, the data has 2000/);
  });
});

describe('naturalPartition', () => {
  it('gives one client per ID, in first-appearance order', () => {
    const ids = ['adams', 'lincoln', 'adams', 'obama', 'lincoln', 'adams'];
    const { ids: clients, partition } = naturalPartition(ids);
    expect(clients).toEqual(['adams', 'lincoln', 'obama']);
    expect(partition.map((r) => [...r])).toEqual([[0, 2, 5], [1, 4], [3]]);
    checkPartition(partition, ids.length, true);
    const numeric = naturalPartition(Uint8Array.from([3, 3, 1, 0, 1]));
    expect(numeric.ids).toEqual([3, 1, 0]);
    expect(numeric.partition.map((r) => [...r])).toEqual([[0, 1], [2, 4], [3]]);
  });
});

describe('labelHistogram', () => {
  it('counts each client\'s rows per class and refuses out-of-range labels', () => {
    const h = labelHistogram([0, 2, 2, 1, 0], [Uint32Array.of(0, 1, 2), Uint32Array.of(3), new Uint32Array(0)], 3);
    expect(h.map((c) => [...c])).toEqual([[1, 0, 2], [0, 1, 0], [0, 0, 0]]);
    expect(() => labelHistogram([0, 3], [Uint32Array.of(1)], 3)).toThrow(/client 0's row 1 has label 3/);
  });
});

describe('clientData', () => {
  /** count rows of `features` inputs, row r holding r * 1000 + f, and labels r % classes. */
  function indexed(count: number, features: number, classes: number) {
    const inputs = Float32Array.from({ length: count * features }, (_, i) => Math.floor(i / features) * 1000 + (i % features));
    const labels = Uint32Array.from({ length: count }, (_, r) => r % classes);
    return { inputs, labels, count, features, classes };
  }

  it('copies each client\'s listed rows, inputs and labels, in the listed order', () => {
    const data = indexed(10, 3, 4);
    const partition = [Uint32Array.of(7, 0, 3), new Uint32Array(0), [9, 9, 2]];
    const parts = clientData(data, partition);
    expect(parts).toHaveLength(3);
    parts.forEach((part, k) => {
      const rows = [...partition[k]!];
      expect(part.count).toBe(rows.length);
      expect(part.features).toBe(3);
      expect(part.classes).toBe(4);
      expect([...part.inputs]).toEqual(rows.flatMap((r) => [r * 1000, r * 1000 + 1, r * 1000 + 2]));
      expect([...part.labels]).toEqual(rows.map((r) => r % 4));
    });
    // Copies: writing a client's rows leaves the data set as it was.
    parts[0]!.inputs[0] = -1;
    parts[0]!.labels[0] = 3;
    expect(data.inputs[7 * 3]).toBe(7000);
    expect(data.labels[7]).toBe(3);
  });

  it('keeps labels of data sets with more than 256 classes', () => {
    const data = indexed(600, 2, 600);
    const [part] = clientData(data, [[599, 300, 256, 255, 1]]);
    expect([...part!.labels]).toEqual([599, 300, 256, 255, 1]);
    expect([...part!.inputs]).toEqual([599000, 599001, 300000, 300001, 256000, 256001, 255000, 255001, 1000, 1001]);
  });

  it('refuses a row that is not in the data, naming the client and the row', () => {
    const data = indexed(5, 2, 3);
    expect(() => clientData(data, [[0, 1], [2, 5]])).toThrow('clientData: client 1 lists row 5; the data has 5 rows');
    expect(() => clientData(data, [[-1]])).toThrow('clientData: client 0 lists row -1; the data has 5 rows');
    expect(() => clientData(data, [[0], [1], [1.5]])).toThrow('clientData: client 2 lists row 1.5; the data has 5 rows');
    expect(() => clientData(data, [[NaN]])).toThrow('clientData: client 0 lists row NaN; the data has 5 rows');
  });
});
