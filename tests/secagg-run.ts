// Drives one secure aggregation (src/paradigms/federated/secagg.ts) in process, as a transport
// would: every message goes client -> server -> clients, round by round, and each round may leave
// some clients silent (dropped out). Shared by the Node and browser tests.
import {
  SecAggClient,
  SecAggServer,
  type ClientId,
  type KeyListMessage,
  type MaskedInputMessage,
  type MaskInputOptions,
  type SecAggConfig,
  type SecAggResult,
  type SecAggRound,
  type SharesForClientMessage,
  type UnmaskingRequest,
} from '../src/paradigms/federated/secagg.js';
import { uniform } from './reference.js';

/** For each round, the clients that send nothing from that round on. */
export type Silences = Partial<Record<SecAggRound, readonly ClientId[]>>;

export class SecAggRun {
  readonly server: SecAggServer;
  readonly clients: Map<ClientId, SecAggClient>;
  /** Who still answers. */
  readonly answering: Set<ClientId>;
  keyList: KeyListMessage | null = null;
  routed: SharesForClientMessage[] = [];
  readonly maskedInputs = new Map<ClientId, MaskedInputMessage>();
  request: UnmaskingRequest | null = null;

  constructor(config: SecAggConfig, ids: readonly ClientId[]) {
    this.server = new SecAggServer(config);
    this.clients = new Map(ids.map((id) => [id, new SecAggClient(id, config)]));
    this.answering = new Set(ids);
  }

  /** The answering clients once `silent` stop. */
  private speakers(silent: readonly ClientId[] = []): SecAggClient[] {
    for (const id of silent) this.answering.delete(id);
    return [...this.clients.values()].filter((c) => this.answering.has(c.id));
  }

  async advertiseKeys(silent?: readonly ClientId[]): Promise<KeyListMessage> {
    for (const message of await Promise.all(this.speakers(silent).map((c) => c.advertiseKeys()))) this.server.receive(message);
    return (this.keyList = this.server.endAdvertiseKeys());
  }

  async shareKeys(silent?: readonly ClientId[]): Promise<SharesForClientMessage[]> {
    const keyList = this.keyList!;
    for (const message of await Promise.all(this.speakers(silent).map((c) => c.shareKeys(keyList)))) this.server.receive(message);
    return (this.routed = this.server.endShareKeys());
  }

  async maskedInputCollection(update: (id: ClientId) => Float32Array, silent?: readonly ClientId[], options: (id: ClientId) => MaskInputOptions = () => ({})): Promise<UnmaskingRequest> {
    const speakers = new Set(this.speakers(silent).map((c) => c.id));
    const messages = await Promise.all(this.routed.filter((m) => speakers.has(m.to)).map((m) => this.clients.get(m.to)!.maskInput(m, update(m.to), options(m.to))));
    for (const message of messages) {
      this.maskedInputs.set(message.from, message);
      this.server.receive(message);
    }
    return (this.request = this.server.endMaskedInputCollection());
  }

  async unmasking(silent?: readonly ClientId[]): Promise<SecAggResult> {
    const request = this.request!;
    const speakers = new Set(this.speakers(silent).map((c) => c.id));
    const answers = await Promise.all(request.survivors.filter((id) => speakers.has(id)).map((id) => this.clients.get(id)!.unmask(request)));
    for (const answer of answers) this.server.receive(answer);
    return this.server.endUnmasking();
  }
}

/** A whole aggregation of updates[k] from ids[k], with the given silences. */
export async function aggregate(
  config: SecAggConfig,
  ids: readonly ClientId[],
  updates: readonly Float32Array[],
  silences: Silences = {},
  options: (id: ClientId) => MaskInputOptions = () => ({}),
): Promise<{ result: SecAggResult; run: SecAggRun }> {
  const run = new SecAggRun(config, ids);
  const updateOf = (id: ClientId) => updates[ids.indexOf(id)]!;
  await run.advertiseKeys(silences.AdvertiseKeys);
  await run.shareKeys(silences.ShareKeys);
  await run.maskedInputCollection(updateOf, silences.MaskedInputCollection, options);
  const result = await run.unmasking(silences.Unmasking);
  return { result, run };
}

/** Float64 sum of the updates of `ids` (a subset of allIds), each coordinate clipped to [-range, range] and scaled by its weight. */
export function clippedSum(allIds: readonly ClientId[], updates: readonly Float32Array[], ids: readonly ClientId[], range: number, weights?: readonly number[]): Float64Array {
  const sum = new Float64Array(updates[0]!.length);
  for (const id of ids) {
    const k = allIds.indexOf(id);
    const weight = weights?.[k] ?? 1;
    updates[k]!.forEach((x, i) => (sum[i]! += weight * Math.min(range, Math.max(-range, x))));
  }
  return sum;
}

/** The largest |a_i - b_i|. */
export function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let most = 0;
  for (let i = 0; i < a.length; i++) most = Math.max(most, Math.abs(a[i]! - b[i]!));
  return most;
}

/** n seeded updates of length P, uniform in [-1.2, 1.2] (a few coordinates beyond a range of 1). */
export function randomUpdates(n: number, P: number, seed: number): Float32Array[] {
  return Array.from({ length: n }, (_, k) => Float32Array.from(uniform([P], seed + k, -1.2, 1.2)));
}
