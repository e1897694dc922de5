// Client data partitions for federated learning: which rows of a data set each simulated client
// holds. Every partitioner returns one Uint32Array of row indices per client, sorted ascending (a
// client's training loop shuffles its own rows); no row goes to two clients. Same seed, same
// partition, on every machine (the generators of engine/random.ts).
//
// References, read from their code:
// - IID: a seeded permutation split into near-equal parts, as NIID-Bench's "homo" partition
//   (Li et al. 2021, Xtra-Computing/NIID-Bench utils.py: np.random.permutation then np.array_split).
// - Shards: McMahan et al. 2017 (FedAvg), section 3: sort by label, 200 shards of 300, 2 per client;
//   as Flower's ShardPartitioner (adap/flower datasets/flwr_datasets/partitioner/shard_partitioner.py:
//   rows sorted by label, a permutation of the shard indices, its first clients * shardsPerClient
//   entries dealt out shardsPerClient at a time) and shaoxiongji/federated-learning utils/sampling.py.
// - Dirichlet: per class, client proportions ~ Dir(alpha), the class's rows cut at the cumulative
//   proportions (floor), redrawn whole while some client holds fewer than minSize rows: Flower's
//   DirichletPartitioner (dirichlet_partitioner.py, after Yurochkin et al. 2019; min_partition_size 10,
//   at most 10 redraws then an error) and NIID-Bench's "noniid-labeldir" (min_require_size 10).
import { dirichletGenerator, permutation, shuffleInPlace, uniformGenerator } from '../../engine/random.js';

/** Row indices per client: `partition[c]` holds client c's rows, ascending. */
export type Partition = Uint32Array[];

function checkCount(op: string, what: string, n: number, min = 1): void {
  if (!Number.isInteger(n) || n < min) throw new Error(`${op}: ${what} must be an integer >= ${min}, got ${n}`);
}

function checkSeed(op: string, seed: number): void {
  if (!Number.isInteger(seed)) throw new Error(`${op}: seed must be an integer, got ${seed}`);
}

function checkLabels(op: string, labels: ArrayLike<number>): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0) throw new Error(`${op}: label ${y} at row ${i} is not a non-negative integer`);
  }
}

const ascending = (rows: ArrayLike<number>): Uint32Array => Uint32Array.from(rows).sort();

/** The rows of each distinct key, keys in first-appearance order (a Map's), rows ascending. */
function groupRows<T>(keys: ArrayLike<T>): Map<T, number[]> {
  const groups = new Map<T, number[]>();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    let rows = groups.get(key);
    if (!rows) groups.set(key, (rows = []));
    rows.push(i);
  }
  return groups;
}

/** The rows of each distinct label, labels ascending, rows ascending within a label. */
const rowsByLabel = (labels: ArrayLike<number>): { label: number; rows: number[] }[] =>
  [...groupRows(labels)].sort((a, b) => a[0] - b[0]).map(([label, rows]) => ({ label, rows }));

/**
 * IID: a seeded permutation of rows 0..count-1 cut into `clients` consecutive parts; the first
 * count % clients parts hold one row more (np.array_split's sizes). Uses every row.
 */
export function iidPartition(count: number, clients: number, options: { seed?: number } = {}): Partition {
  checkCount('iidPartition', 'clients', clients);
  checkCount('iidPartition', 'count', count, clients);
  const seed = options.seed ?? 1;
  checkSeed('iidPartition', seed);
  const order = permutation(count, seed);
  const base = Math.floor(count / clients);
  const extra = count % clients;
  const out: Partition = [];
  for (let c = 0, start = 0; c < clients; c++) {
    const size = base + (c < extra ? 1 : 0);
    out.push(order.slice(start, start + size).sort());
    start += size;
  }
  return out;
}

export interface ShardOptions {
  /** Equal shards the label-sorted rows are cut into; default clients * shardsPerClient (Flower's default). */
  shards?: number;
  /** Shards each client receives; default 2 (McMahan et al. 2017). */
  shardsPerClient?: number;
  seed?: number;
}

/**
 * McMahan et al.'s pathological non-IID split: rows sorted by label (stable: ties by row index), cut
 * into `shards` consecutive shards of count / shards rows, and client c given the shards at
 * positions c * shardsPerClient .. (c + 1) * shardsPerClient - 1 of `permutation(shards, seed)`.
 * With more shards than clients * shardsPerClient, the shards left over (the permutation's tail)
 * go to no client, so their rows are unused; otherwise every row is used. For MNIST's 60,000
 * training rows: `shardPartition(labels, 100, { shards: 200, shardsPerClient: 2 })`, shards of 300.
 */
export function shardPartition(labels: ArrayLike<number>, clients: number, options: ShardOptions = {}): Partition {
  const op = 'shardPartition';
  checkCount(op, 'clients', clients);
  const perClient = options.shardsPerClient ?? 2;
  checkCount(op, 'shardsPerClient', perClient);
  const needed = clients * perClient;
  const shards = options.shards ?? needed;
  checkCount(op, 'shards', shards);
  const seed = options.seed ?? 1;
  checkSeed(op, seed);
  checkLabels(op, labels);
  const count = labels.length;
  if (needed > shards) {
    throw new Error(`${op}: ${clients} clients x ${perClient} shards each need ${needed} shards, only ${shards} exist; raise shards or lower clients or shardsPerClient`);
  }
  if (count < shards || count % shards !== 0) {
    throw new Error(
      `${op}: ${count} rows do not cut into ${shards} equal shards (${count % shards} left over); pass a shards count that divides ${count}, ` +
        `or drop ${count % shards} rows first (e.g. a seeded subset) and map the indices back`,
    );
  }
  const size = count / shards;
  const sorted = rowsByLabel(labels).flatMap((g) => g.rows);
  const order = permutation(shards, seed);
  const out: Partition = [];
  for (let c = 0; c < clients; c++) {
    const rows = new Uint32Array(perClient * size);
    for (let s = 0; s < perClient; s++) {
      const shard = order[c * perClient + s]!;
      for (let r = 0; r < size; r++) rows[s * size + r] = sorted[shard * size + r]!;
    }
    out.push(rows.sort());
  }
  return out;
}

export interface DirichletOptions {
  /**
   * Concentration: one value for every client, or one per client. Small (0.1) gives each client a
   * few classes; large (100) approaches IID.
   */
  alpha: number | readonly number[];
  seed?: number;
  /** The fewest rows a client may hold; the whole draw is repeated until every client has them. Default 10 (Flower, NIID-Bench). */
  minSize?: number;
  /** Redraws allowed after the first draw before giving up with an error; default 10 (Flower's limit). */
  maxRetries?: number;
  /**
   * Flower's self_balancing (default false there, as here; NIID-Bench always on): while a class is
   * split, clients already holding more than count / clients rows get none of it.
   */
  selfBalancing?: boolean;
}

/**
 * Label-skewed split: for each label (ascending), its rows in a seeded random order, a
 * Dirichlet(alpha) draw of client proportions p, and client c given the rows from
 * floor(n * (p_0 + .. + p_{c-1})) to floor(n * (p_0 + .. + p_c)) (the last to n). Uses every row.
 * The draw is repeated (same generator, continued) while some client holds fewer than `minSize`
 * rows, at most `maxRetries` times, then it throws.
 *
 * This is the per-class split of Yurochkin et al. (2019), Flower and NIID-Bench. Hsu et al. (2019)
 * instead draw each client's class mix q ~ Dir(alpha * global class mix) and sample its rows from q;
 * the two agree in spirit (alpha -> 0: one class per client; alpha -> infinity: IID), not in detail.
 */
export function dirichletPartition(labels: ArrayLike<number>, clients: number, options: DirichletOptions): Partition {
  const op = 'dirichletPartition';
  checkCount(op, 'clients', clients);
  const alpha = typeof options.alpha === 'number' ? new Array<number>(clients).fill(options.alpha) : [...options.alpha];
  if (alpha.length !== clients) throw new Error(`${op}: alpha holds ${alpha.length} values for ${clients} clients`);
  if (!alpha.every((a) => a > 0 && Number.isFinite(a))) throw new Error(`${op}: alpha must be positive and finite, got [${alpha.join(', ')}]`);
  const seed = options.seed ?? 1;
  checkSeed(op, seed);
  const minSize = options.minSize ?? 10;
  checkCount(op, 'minSize', minSize, 0);
  const maxRetries = options.maxRetries ?? 10;
  checkCount(op, 'maxRetries', maxRetries, 0);
  checkLabels(op, labels);
  const count = labels.length;
  if (minSize * clients > count) throw new Error(`${op}: ${clients} clients of at least ${minSize} rows need ${minSize * clients} rows, the data has ${count}`);

  const uniform = uniformGenerator(seed);
  const draw = dirichletGenerator(alpha, uniform);
  const groups = rowsByLabel(labels);
  const average = count / clients;
  let smallest = 0;
  for (let attempt = 0; attempt <= maxRetries; attempt++) {
    const held: number[][] = Array.from({ length: clients }, () => []);
    for (const { rows } of groups) {
      const order = rows.slice();
      shuffleInPlace(order, uniform);
      const p = draw();
      if (options.selfBalancing) {
        const open = p.map((v, c) => (held[c]!.length > average ? 0 : v));
        const sum = open.reduce((a, b) => a + b, 0);
        // Some client is always at or below the average; a zero sum means its share underflowed.
        if (sum > 0) for (let c = 0; c < clients; c++) p[c] = open[c]! / sum;
      }
      let cumulative = 0;
      for (let c = 0, start = 0; c < clients; c++) {
        cumulative += p[c]!;
        const end = c === clients - 1 ? order.length : Math.min(order.length, Math.floor(cumulative * order.length));
        for (let k = start; k < end; k++) held[c]!.push(order[k]!);
        start = Math.max(start, end);
      }
    }
    smallest = Math.min(...held.map((h) => h.length));
    if (smallest >= minSize) return held.map(ascending);
  }
  throw new Error(
    `${op}: after ${maxRetries + 1} draws some client still held fewer than ${minSize} rows (the last draw's smallest: ${smallest}); ` +
      `raise alpha, lower minSize, or use fewer clients`,
  );
}

/**
 * One client per distinct value of `ids` (a user, a writer, a president), clients in the order
 * their ID first appears; `ids[c]` is client c's ID. Uses every row. Values are told apart as a
 * Map does (SameValueZero).
 */
export function naturalPartition<T>(ids: ArrayLike<T>): { ids: T[]; partition: Partition } {
  const client = groupRows(ids);
  return { ids: [...client.keys()], partition: [...client.values()].map(ascending) };
}

/** How many rows of each class each client holds: `histogram[c][k]` for client c and class k. */
export function labelHistogram(labels: ArrayLike<number>, partition: readonly ArrayLike<number>[], classes: number): Uint32Array[] {
  checkCount('labelHistogram', 'classes', classes);
  return partition.map((rows, c) => {
    const counts = new Uint32Array(classes);
    for (let k = 0; k < rows.length; k++) {
      const i = rows[k]!;
      const y = labels[i];
      if (y === undefined || !Number.isInteger(y) || y < 0 || y >= classes) {
        throw new Error(`labelHistogram: client ${c}'s row ${i} has label ${y}, not a class of 0..${classes - 1}`);
      }
      counts[y]!++;
    }
    return counts;
  });
}

/** Each client's rows of a classification data set, copied out (partition[k] lists client k's row indices); labels as 32-bit integers, whatever the number of classes. */
export function clientData<D extends { inputs: Float32Array; labels: ArrayLike<number>; count: number; features: number; classes: number }>(data: D, partition: readonly ArrayLike<number>[]): { inputs: Float32Array; labels: Uint32Array; count: number; features: number; classes: number }[] {
  return partition.map((rows, k) => {
    const inputs = new Float32Array(rows.length * data.features);
    const labels = new Uint32Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (!Number.isInteger(r) || r < 0 || r >= data.count) throw new Error(`clientData: client ${k} lists row ${r}; the data has ${data.count} rows`);
      inputs.set(data.inputs.subarray(r * data.features, (r + 1) * data.features), i * data.features);
      labels[i] = data.labels[r]!;
    }
    return { inputs, labels, count: rows.length, features: data.features, classes: data.classes };
  });
}
