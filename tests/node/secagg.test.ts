// Secure aggregation (src/paradigms/federated/secagg.ts, Bonawitz et al. 2017) driven round by
// round in process (tests/secagg-run.ts): the unmasked sum against a float64 sum of the clipped
// updates, the server's view of one masked input against uniform noise (byte chi-square, top bits,
// correlation), dropouts at every round up to a third and one more, the refusals, the cost
// accounting and the distributed-DP noise.
import { describe, expect, test } from 'vitest';
import {
  distributedNoiseStddev,
  messageBytes,
  secAggOverhead,
  secAggSettings,
  SecAggClient,
  SecAggServer,
  type ClientId,
  type SecAggConfig,
  type SecAggRound,
} from '../../src/paradigms/federated/secagg.js';
import { aggregate, clippedSum, maxDifference, randomUpdates, SecAggRun, type Silences } from '../secagg-run.js';

const idsOf = (n: number): ClientId[] => Array.from({ length: n }, (_, k) => `client-${k}`);

/** n clients' ids, their seeded updates of length P, and a config of range 1 for each session name. */
function fixture(n: number, P: number, seed: number) {
  return { ids: idsOf(n), updates: randomUpdates(n, P, seed), config: (session: string): SecAggConfig => ({ session, clients: n, length: P, range: 1 }) };
}

/** The error a float32 result may add on top of quantisation: half an ulp of the largest value. */
const f32Slack = (want: Float64Array) => want.reduce((most, x) => Math.max(most, Math.abs(x)), 0) * 2 ** -24;

describe('the unmasked sum', () => {
  test.each([
    [5, 1000],
    [7, 4099],
    [10, 10000],
  ])('n = %i clients, P = %i: the float64 sum of the clipped updates within n steps (stochastic) and n/2 steps (nearest)', async (n, P) => {
    const ids = idsOf(n);
    const updates = randomUpdates(n, P, 10 * n);
    const want = clippedSum(ids, updates, ids, 1);
    for (const rounding of ['stochastic', 'nearest'] as const) {
      // 12 bits make the quantisation error visible above float32 rounding.
      const config: SecAggConfig = { session: `sum-${n}-${rounding}`, clients: n, length: P, range: 1, bits: 12, rounding };
      const { result } = await aggregate(config, ids, updates);
      const { step } = secAggSettings(config);
      const error = maxDifference(result.sum, want);
      expect(error).toBeLessThanOrEqual((rounding === 'nearest' ? n / 2 : n) * step + f32Slack(want));
      expect(error).toBeGreaterThan(0);
      expect(result.weightTotal).toBe(n);
      expect(result.survivors).toEqual(ids);
      expect(result.dropped).toEqual([]);
    }
    // The default bits (32 - ceil(log2 n)) leave only float32 rounding.
    const { result } = await aggregate({ session: `sum-${n}`, clients: n, length: P, range: 1 }, ids, updates);
    expect(maxDifference(result.sum, want)).toBeLessThanOrEqual(n * secAggSettings({ session: 's', clients: n, length: P, range: 1 }).step + f32Slack(want));
  });

  test('stochastic rounding is unbiased: the mean error over many coordinates is far below a step', async () => {
    const n = 5;
    const P = 20000;
    const ids = idsOf(n);
    // Every coordinate a third of the way between two levels: nearest rounding would be off by step / 3 each.
    const config: SecAggConfig = { session: 'bias', clients: n, length: P, range: 1, bits: 8 };
    const { step } = secAggSettings(config);
    const updates = ids.map(() => new Float32Array(P).fill(-1 + 100.33 * step));
    const want = n * (-1 + 100.33 * step);
    const { result } = await aggregate(config, ids, updates);
    const meanError = result.sum.reduce((sum, x) => sum + (x - want), 0) / P;
    // Each coordinate's error has std sqrt(n 0.33 0.67) step; its mean over P, that / sqrt(P).
    expect(Math.abs(meanError)).toBeLessThan((5 * Math.sqrt(n * 0.33 * 0.67) * step) / Math.sqrt(P));
  });

  test('weights: the sum of n_u x_u and the total of n_u, whose ratio is FedAvg\'s weighted mean', async () => {
    const n = 6;
    const P = 3000;
    const ids = idsOf(n);
    const updates = randomUpdates(n, P, 7);
    const weights = [120, 7, 999, 0, 310, 1000];
    const config: SecAggConfig = { session: 'weighted', clients: n, length: P, range: 1, maxWeight: 1000 };
    const { result } = await aggregate(config, ids, updates, {}, (id) => ({ weight: weights[ids.indexOf(id)]! }));
    const want = clippedSum(ids, updates, ids, 1, weights);
    expect(result.weightTotal).toBe(weights.reduce((a, b) => a + b));
    // Each client's step is scaled by maxWeight on the way back.
    expect(maxDifference(result.sum, want)).toBeLessThanOrEqual(n * 1000 * secAggSettings(config).step + f32Slack(want));
    const mean = result.sum.map((x) => x / result.weightTotal);
    expect(maxDifference(mean, want.map((x) => x / result.weightTotal))).toBeLessThan(1e-5);
    await expect(aggregate({ ...config, session: 'weight-too-big' }, ids, updates, {}, () => ({ weight: 1001 }))).rejects.toThrow(
      'MaskedInputCollection: weight 1001 must be an integer in [0, maxWeight = 1000]',
    );
  });

  test('ids may be numbers and strings: the key list is sorted numbers first, and 1 and "1" are two clients', async () => {
    const ids: ClientId[] = ['b', 10, 1, '1', 2];
    const updates = randomUpdates(ids.length, 500, 3);
    const { result, run } = await aggregate({ session: 'ids', clients: 5, length: 500, range: 1 }, ids, updates, { MaskedInputCollection: ['1'] });
    expect(run.keyList!.clients.map((c) => c.id)).toEqual([1, 2, 10, '1', 'b']);
    expect(result.survivors).toEqual([1, 2, 10, 'b']);
    expect(result.dropped).toEqual(['1']);
    const want = clippedSum(ids, updates, result.survivors, 1);
    expect(maxDifference(result.sum, want)).toBeLessThanOrEqual(4 * secAggSettings({ session: 's', clients: 5, length: 1, range: 1 }).step + f32Slack(want));
  });
});

/** Pearson's correlation of two equally long sequences. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let [ma, mb] = [0, 0];
  for (let i = 0; i < n; i++) [ma, mb] = [ma + a[i]! / n, mb + b[i]! / n];
  let [sab, saa, sbb] = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const [da, db] = [a[i]! - ma, b[i]! - mb];
    [sab, saa, sbb] = [sab + da * db, saa + da * da, sbb + db * db];
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Pearson's chi-square of the byte histogram against uniform over 256 values. */
function byteChiSquare(bytes: Uint8Array): number {
  const counts = new Float64Array(256);
  for (const byte of bytes) counts[byte]!++;
  const expected = bytes.length / 256;
  return counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
}

describe('what the server sees of one client', () => {
  test('a masked input is indistinguishable from uniform words: byte chi-square, top bits, no correlation with the update', async () => {
    const n = 5;
    const P = 10000;
    const ids = idsOf(n);
    const updates = randomUpdates(n, P, 99);
    const config: SecAggConfig = { session: 'view', clients: n, length: P, range: 1, rounding: 'nearest' };
    const { bits, step } = secAggSettings(config);
    const { result, run } = await aggregate(config, ids, updates);
    // 255 degrees of freedom: mean 255, std sqrt(510) = 22.6; six std above the mean.
    const chiSquareBound = 255 + 6 * Math.sqrt(510);
    for (const [k, id] of ids.entries()) {
      const masked = run.maskedInputs.get(id)!.maskedInput;
      const words = new Uint32Array(masked.slice().buffer);
      // The plain input as the client quantised it (nearest rounding: reproducible here), weight last.
      const plain = new Uint32Array(P + 1);
      updates[k]!.forEach((x, i) => (plain[i] = Math.round((Math.min(1, Math.max(-1, x)) + 1) / step)));
      plain[P] = 1;
      expect(byteChiSquare(new Uint8Array(plain.buffer))).toBeGreaterThan(100 * chiSquareBound);
      expect(byteChiSquare(masked)).toBeLessThan(chiSquareBound);
      // The plain levels are below 2^bits, so their top 32 - bits bits are 0; masked, each is set half the time.
      const topBits = words.reduce((count, w) => count + (w >>> 31), 0);
      expect(plain.every((w) => w < 2 ** bits)).toBe(true);
      expect(Math.abs(topBits - (P + 1) / 2)).toBeLessThan(5 * Math.sqrt((P + 1) / 4));
      expect(Math.abs(correlation(words, plain))).toBeLessThan(5 / Math.sqrt(P));
      expect(words.filter((w, i) => w === plain[i]).length).toBeLessThanOrEqual(1);
    }
    // ... and yet the masks cancel.
    const want = clippedSum(ids, updates, ids, 1);
    expect(maxDifference(result.sum, want)).toBeLessThanOrEqual((n / 2) * step + f32Slack(want));
  });
});

describe('dropouts', () => {
  // n = 9: t = 9 - floor(9 / 3) = 6, so up to 3 clients may drop, in any rounds.
  const { ids, updates, config } = fixture(9, 2000, 1234);
  const step = secAggSettings(config('s')).step;

  test.each<[string, Silences, ClientId[], ClientId[]]>([
    ['3 never advertise keys', { AdvertiseKeys: ['client-0', 'client-4', 'client-8'] }, ['client-1', 'client-2', 'client-3', 'client-5', 'client-6', 'client-7'], []],
    ['3 drop after AdvertiseKeys', { ShareKeys: ['client-1', 'client-2', 'client-3'] }, ['client-0', 'client-4', 'client-5', 'client-6', 'client-7', 'client-8'], []],
    ['3 drop after ShareKeys (their pairwise masks removed through s_u shares)', { MaskedInputCollection: ['client-0', 'client-5', 'client-7'] }, ['client-1', 'client-2', 'client-3', 'client-4', 'client-6', 'client-8'], ['client-0', 'client-5', 'client-7']],
    ['3 drop after sending masked input (still summed)', { Unmasking: ['client-2', 'client-3', 'client-6'] }, ids, []],
    [
      'one in each round',
      { ShareKeys: ['client-8'], MaskedInputCollection: ['client-1'], Unmasking: ['client-4'] },
      ['client-0', 'client-2', 'client-3', 'client-4', 'client-5', 'client-6', 'client-7'],
      ['client-1'],
    ],
  ])('%s: the exact sum of U3', async (name, silences, survivors, dropped) => {
    const { result } = await aggregate(config(name), ids, updates, silences);
    expect(result.survivors).toEqual(survivors);
    expect(result.dropped).toEqual(dropped);
    expect(result.weightTotal).toBe(survivors.length);
    const want = clippedSum(ids, updates, survivors, 1);
    expect(maxDifference(result.sum, want)).toBeLessThanOrEqual(survivors.length * step + f32Slack(want));
  });

  test.each<[SecAggRound, string]>([
    ['AdvertiseKeys', 'SecAggServer AdvertiseKeys: only 5 clients advertised keys, fewer than the threshold t = 6'],
    ['ShareKeys', 'SecAggServer ShareKeys: only 5 clients shared keys, fewer than the threshold t = 6'],
    ['MaskedInputCollection', 'SecAggServer MaskedInputCollection: only 5 clients sent masked input, fewer than the threshold t = 6'],
    ['Unmasking', 'SecAggServer Unmasking: only 5 of the 9 survivors answered, fewer than the threshold t = 6'],
  ])('4 silent from %s: more than a third, a clear error', async (round, message) => {
    const silences: Silences = { [round]: ['client-0', 'client-3', 'client-6', 'client-7'] };
    await expect(aggregate(config(`too-many-${round}`), ids, updates, silences)).rejects.toThrow(message);
  });
});

describe('refusals', () => {
  const P = 300;
  const { ids, updates, config } = fixture(5, P, 5);

  /** A run up to the Unmasking request, with client-4 dropped after ShareKeys. */
  async function untilUnmasking(session: string): Promise<SecAggRun> {
    const run = new SecAggRun(config(session), ids);
    await run.advertiseKeys();
    await run.shareKeys();
    await run.maskedInputCollection((id) => updates[ids.indexOf(id)]!, ['client-4']);
    return run;
  }

  test('a client asked for both the self-mask and the masking-key shares of one client refuses', async () => {
    const run = await untilUnmasking('both');
    const request = run.request!;
    expect(request.dropped).toEqual(['client-4']);
    const client = run.clients.get('client-0')!;
    await expect(client.unmask({ ...request, dropped: [...request.dropped, 'client-2'] })).rejects.toThrow(
      'SecAggClient "client-0" Unmasking: asked for both the self-mask and the masking-key shares of client "client-2"; refused (the two together unmask its input)',
    );
    await expect(client.unmask({ ...request, survivors: request.survivors.filter((id) => id !== 'client-0'), dropped: [...request.dropped, 'client-0'] })).rejects.toThrow(
      'the request lists this client as dropped, though it sent its masked input; refused',
    );
    await expect(client.unmask({ ...request, dropped: [] })).rejects.toThrow('survivors and dropped together (U2) lacks "client-4"');
    await expect(client.unmask({ ...request, survivors: [...request.survivors, 'stranger'] })).rejects.toThrow('survivors and dropped together (U2) names "stranger", not expected there');
    // The refusals left the client able to answer the honest request.
    expect((await client.unmask(request)).maskingKeyShares.map((s) => s.of)).toEqual(['client-4']);
  });

  test('a tampered or misaddressed ciphertext fails to decrypt, naming its sender', async () => {
    const run = new SecAggRun(config('tamper'), ids);
    await run.advertiseKeys();
    const routed = await run.shareKeys();
    // client-1 receives client-3's shares with one bit flipped; client-2 receives client-3's shares for client-0 as if from client-4.
    const forOne = routed.find((m) => m.to === 'client-1')!;
    const flipped = forOne.shares.map((s) => (s.from === 'client-3' ? { ...s, ciphertext: s.ciphertext.map((b, i) => (i === 40 ? b ^ 1 : b)) } : s));
    run.routed = routed.map((m) => (m === forOne ? { ...m, shares: flipped } : m));
    const forTwo = run.routed.find((m) => m.to === 'client-2')!;
    const stolen = routed.find((m) => m.to === 'client-0')!.shares.find((s) => s.from === 'client-3')!.ciphertext;
    run.routed = run.routed.map((m) => (m === forTwo ? { ...m, shares: m.shares.map((s) => (s.from === 'client-4' ? { ...s, ciphertext: stolen } : s)) } : m));
    const request = await run.maskedInputCollection((id) => updates[ids.indexOf(id)]!);
    await expect(run.clients.get('client-1')!.unmask(request)).rejects.toThrow(
      'SecAggClient "client-1" Unmasking: the shares from client "client-3" fail to decrypt (altered, or not encrypted for this client in this session)',
    );
    await expect(run.clients.get('client-2')!.unmask(request)).rejects.toThrow('the shares from client "client-4" fail to decrypt');
  });

  test('altered shares in Unmasking are caught: off the polynomial, a masking key off its point, a self mask that does not cancel', async () => {
    // n = 6, t = 4; client-5 drops after ShareKeys, so five survivors answer (or only four: exactly t).
    const six = fixture(6, P, 6);
    const flip = (share: Uint8Array) => share.map((b, i) => (i === share.length - 1 ? b ^ 1 : b));
    const cases = [
      { answering: 5, kind: 'selfMaskShares', error: 'SecAggServer Unmasking: rebuilding client "client-0"\'s self-mask seed: recoverSecret: the 5 shares do not lie on one polynomial of degree 3' },
      { answering: 4, kind: 'maskingKeyShares', error: 'SecAggServer Unmasking: client "client-5"\'s rebuilt masking key is not a P-256 private key for the point it advertised' },
      { answering: 4, kind: 'selfMaskShares', error: 'exceeds 5 survivors x maxWeight 1: a mask was not removed' },
    ] as const;
    for (const [k, { answering, kind, error }] of cases.entries()) {
      const run = new SecAggRun(six.config(`altered-${k}`), six.ids);
      await run.advertiseKeys();
      await run.shareKeys();
      const request = await run.maskedInputCollection((id) => six.updates[six.ids.indexOf(id)]!, ['client-5']);
      const answers = await Promise.all(request.survivors.slice(0, answering).map((id) => run.clients.get(id)!.unmask(request)));
      const [first, ...rest] = answers;
      run.server.receive({ ...first!, [kind]: first![kind].map((s, j) => (j === 0 ? { ...s, share: flip(s.share) } : s)) });
      for (const answer of rest) run.server.receive(answer);
      await expect(run.server.endUnmasking()).rejects.toThrow(error);
    }
  });

  test('the server refuses messages of another round or session, duplicates, strangers and wrong lengths, naming the client', async () => {
    const server = new SecAggServer(config('server'));
    const clients = ids.map((id) => new SecAggClient(id, config('server')));
    const adverts = await Promise.all(clients.map((c) => c.advertiseKeys()));
    server.receive(adverts[0]!);
    expect(() => server.receive(adverts[0]!)).toThrow('SecAggServer AdvertiseKeys: client "client-0": a second AdvertiseKeys message');
    expect(() => server.receive({ ...adverts[1]!, session: 'other' })).toThrow('client "client-1": the message is for session \'other\', this is session \'server\'');
    expect(() => server.receive({ ...adverts[1]!, maskingKey: adverts[1]!.maskingKey.subarray(1) })).toThrow('client "client-1"\'s masking key must be a raw uncompressed P-256 point');
    expect(() => server.endShareKeys()).toThrow('SecAggServer ShareKeys: out of order, the server is at AdvertiseKeys');
    for (const advert of adverts.slice(1)) server.receive(advert);
    expect(() => server.receive({ ...adverts[1]!, from: 'client-5' })).toThrow('client "client-5": already 5 clients (n) advertised keys');
    const keyList = server.endAdvertiseKeys();
    expect(server.round).toBe('ShareKeys');
    expect(() => server.receive(adverts[2]!)).toThrow('SecAggServer ShareKeys: client "client-2": got a message of round AdvertiseKeys, expected one of round ShareKeys');
    const shares = await Promise.all(clients.map((c) => c.shareKeys(keyList)));
    expect(() => server.receive({ ...shares[0]!, from: 'stranger' })).toThrow('SecAggServer ShareKeys: client "stranger": not in the key list (U1)');
    expect(() => server.receive({ ...shares[0]!, shares: shares[0]!.shares.slice(1) })).toThrow('the shares\' recipients lacks "client-1"');
    for (const message of shares.slice(0, 4)) server.receive(message);
    const routed = server.endShareKeys();
    // client-4 sent its shares too late: not in U2.
    expect(() => server.receive(shares[4]!)).toThrow('got a message of round ShareKeys, expected one of round MaskedInputCollection');
    await expect(clients[0]!.maskInput(routed[0]!, new Float32Array(P - 1))).rejects.toThrow('SecAggClient "client-0" MaskedInputCollection: the update has 299 values, the session\'s length is 300');
    await expect(clients[1]!.maskInput(routed[0]!, new Float32Array(P))).rejects.toThrow('got the shares addressed to client "client-0"');
    const nan = new Float32Array(P);
    nan[7] = NaN;
    await expect(clients[1]!.maskInput(routed[1]!, nan)).rejects.toThrow('the update holds NaN at 7');
    const masked = await clients[0]!.maskInput(routed[0]!, updates[0]!);
    expect(() => server.receive({ ...masked, maskedInput: masked.maskedInput.subarray(4) })).toThrow(
      'client "client-0": a masked input of 1200 bytes, 1204 expected (301 uint32 words: length + 1)',
    );
    server.receive(masked);
    expect(() => server.receive(masked)).toThrow('client "client-0": a second masked input');
    expect(() => server.receive({ ...masked, from: 'client-4' })).toThrow('client "client-4": did not share keys in ShareKeys (U2), so its masks could not be removed');
    await expect(clients[0]!.shareKeys(keyList)).rejects.toThrow('SecAggClient "client-0" ShareKeys: out of order, the client is at Unmasking');
  });

  test('the client refuses a key list that leaves it out, changes its keys or is too short', async () => {
    const clients = ids.map((id) => new SecAggClient(id, config('list')));
    const adverts = await Promise.all(clients.map((c) => c.advertiseKeys()));
    const list = { round: 'AdvertiseKeys' as const, session: 'list', clients: adverts.map((a) => ({ id: a.from, encryptionKey: a.encryptionKey, maskingKey: a.maskingKey })) };
    await expect(clients[0]!.shareKeys({ ...list, clients: list.clients.slice(1) })).rejects.toThrow('SecAggClient "client-0" ShareKeys: the key list leaves this client out');
    const swapped = list.clients.map((c, k) => (k === 0 ? { ...c, maskingKey: list.clients[1]!.maskingKey } : c));
    await expect(clients[0]!.shareKeys({ ...list, clients: swapped })).rejects.toThrow('the key list gives this client other keys than it advertised');
    await expect(clients[0]!.shareKeys({ ...list, clients: list.clients.slice(0, 3) })).rejects.toThrow('only 3 clients advertised keys, fewer than the threshold t = 4');
    await expect(clients[0]!.shareKeys({ ...list, clients: [...list.clients, list.clients[2]!] })).rejects.toThrow('client "client-2" is listed twice');
    // Well formed, but not on the curve: the server passes it on, the clients refuse it.
    const offCurve = list.clients.map((c, k) => (k === 3 ? { ...c, encryptionKey: Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : 7)) } : c));
    await expect(clients[0]!.shareKeys({ ...list, clients: offCurve })).rejects.toThrow('SecAggClient "client-0" ShareKeys: client "client-3"\'s encryptionKey is not a point of P-256');
  });

  test('settings: t must exceed n/2, bits must keep the sum of n clients below 2^32', () => {
    const base = { session: 's', length: 10, range: 1 };
    expect(secAggSettings({ ...base, clients: 10 })).toMatchObject({ threshold: 7, bits: 28, maxWeight: 1, rounding: 'stochastic' });
    expect(secAggSettings({ ...base, clients: 3 })).toMatchObject({ threshold: 2, bits: 30 });
    expect(secAggSettings({ ...base, clients: 1 })).toMatchObject({ threshold: 1, bits: 32 });
    expect(() => secAggSettings({ ...base, clients: 10, threshold: 5 })).toThrow('threshold 5 must be an integer in (n/2, n] = (5, 10]: at t <= n/2 the server could gather t shares of both secrets of one client');
    expect(() => secAggSettings({ ...base, clients: 10, threshold: 11 })).toThrow('threshold 11 must be an integer in (n/2, n]');
    expect(() => secAggSettings({ ...base, clients: 10, bits: 29 })).toThrow('bits 29 must be an integer in [1, 28] (32 - ceil(log2 10)) so that 10 clients\' sum cannot wrap mod 2^32');
    expect(() => secAggSettings({ ...base, clients: 10, maxWeight: 2 ** 29 })).toThrow('maxWeight 536870912 must be an integer >= 1 with 10 maxWeight < 2^32');
    expect(() => secAggSettings({ ...base, clients: 10, range: 0 })).toThrow('range 0 must be a positive finite number');
  });
});

describe('costs', () => {
  test('each round\'s bytes agree between the clients and the server; the overhead over a plain f32 update is the keys and shares', async () => {
    const n = 6;
    const P = 5000;
    const ids = idsOf(n);
    const { run } = await aggregate({ session: 'costs', clients: n, length: P, range: 1 }, ids, randomUpdates(n, P, 4), { Unmasking: ['client-5'] });
    const clients = [...run.clients.values()];
    const total = (round: SecAggRound, side: 'bytesSent' | 'bytesReceived') => clients.reduce((sum, c) => sum + c.costs[round][side], 0);
    for (const round of ['AdvertiseKeys', 'ShareKeys', 'MaskedInputCollection', 'Unmasking'] as const) {
      expect(run.server.costs[round].bytesReceived).toBe(total(round, 'bytesSent'));
      // The silent client-5 was sent the Unmasking request too.
      const unread = round === 'Unmasking' ? messageBytes(run.request) : 0;
      expect(run.server.costs[round].bytesSent).toBe(total(round, 'bytesReceived') + unread);
    }
    const first = clients[0]!.costs;
    expect(first.MaskedInputCollection.bytesSent).toBe(messageBytes(run.maskedInputs.get('client-0')));
    expect(first.MaskedInputCollection.bytesSent).toBeGreaterThan(4 * (P + 1));
    expect(first.AdvertiseKeys.bytesSent).toBeGreaterThan(2 * 65);
    // n - 1 ciphertexts of 160 bytes each way.
    expect(first.ShareKeys.bytesSent).toBeGreaterThan((n - 1) * 160);
    for (const cost of Object.values(first)) expect(cost.milliseconds).toBeGreaterThan(0);
    const overhead = secAggOverhead(first, P);
    expect(overhead.plainBytes).toBe(4 * P);
    expect(overhead.overheadBytes).toBe(overhead.bytesSent + overhead.bytesReceived - 4 * P);
    // Keys, two sets of n - 1 ciphertexts, the weight word and the Unmasking exchange: a few kilobytes, whatever P.
    expect(overhead.overheadBytes).toBeGreaterThan(2 * (n - 1) * 160);
    expect(overhead.overheadBytes).toBeLessThan(5000);
    // The silent client spent nothing in Unmasking.
    expect(run.clients.get('client-5')!.costs.Unmasking).toEqual({ bytesSent: 0, bytesReceived: 0, milliseconds: 0 });
  });
});

describe('distributed differential privacy', () => {
  test('each of n clients adds sigma / sqrt(n): the sum carries noise of variance sigma^2', async () => {
    const n = 8;
    const P = 20000;
    const sigma = 0.05;
    const ids = idsOf(n);
    const zeros = ids.map(() => new Float32Array(P));
    const noiseStddev = distributedNoiseStddev(sigma, n);
    expect(noiseStddev).toBeCloseTo(sigma / Math.sqrt(8), 15);
    const { result } = await aggregate({ session: 'dp', clients: n, length: P, range: 1 }, ids, zeros, {}, () => ({ noiseStddev }));
    const mean = result.sum.reduce((a, b) => a + b, 0) / P;
    const variance = result.sum.reduce((a, b) => a + (b - mean) ** 2, 0) / (P - 1);
    // The sample variance has relative std sqrt(2 / P) = 1%: 5% is five of those.
    expect(Math.abs(variance / sigma ** 2 - 1)).toBeLessThan(0.05);
    expect(Math.abs(mean)).toBeLessThan((5 * sigma) / Math.sqrt(P));
    // With a client silent after ShareKeys the sum carries (n - 1) / n of the variance.
    const { result: fewer } = await aggregate({ session: 'dp-dropped', clients: n, length: P, range: 1 }, ids, zeros, { MaskedInputCollection: ['client-0'] }, () => ({ noiseStddev }));
    const fewerVariance = fewer.sum.reduce((a, b) => a + b * b, 0) / P;
    expect(Math.abs(fewerVariance / (((n - 1) / n) * sigma ** 2) - 1)).toBeLessThan(0.05);
  });

  test('clipNorm scales an update to that L2 norm before noise and quantisation', async () => {
    const n = 3;
    const P = 400;
    const ids = idsOf(n);
    const updates = randomUpdates(n, P, 8).map((u) => u.map((x) => x / 4));
    const { result } = await aggregate({ session: 'clip', clients: n, length: P, range: 1 }, ids, updates, {}, () => ({ clipNorm: 1 }));
    const want = new Float64Array(P);
    for (const u of updates) {
      const norm = Math.hypot(...u);
      expect(norm).toBeGreaterThan(1);
      u.forEach((x, i) => (want[i]! += x / norm));
    }
    expect(maxDifference(result.sum, want)).toBeLessThan(1e-6);
  });
});

test('P = 250,000, n = 10: a whole aggregation in a few seconds; one client masks its input alone in well under a second', async () => {
  const n = 10;
  const P = 250_000;
  const ids = idsOf(n);
  const updates = randomUpdates(n, P, 2024);
  const config: SecAggConfig = { session: 'keyboard', clients: n, length: P, range: 1 };
  let start = performance.now();
  // Three dropped after ShareKeys: the server regenerates 7 self masks and 3 x 7 pairwise masks.
  const { result, run } = await aggregate(config, ids, updates, { MaskedInputCollection: ['client-1', 'client-4', 'client-7'] });
  const whole = performance.now() - start;
  const want = clippedSum(ids, updates, result.survivors, 1);
  expect(maxDifference(result.sum, want)).toBeLessThanOrEqual(7 * secAggSettings(config).step + f32Slack(want));

  // One client's MaskedInputCollection on its own (the run above interleaves ten).
  const alone = new SecAggRun({ ...config, session: 'alone' }, ids);
  await alone.advertiseKeys();
  await alone.shareKeys();
  const client = alone.clients.get('client-0')!;
  start = performance.now();
  await client.maskInput(alone.routed[0]!, updates[0]!);
  const maskOne = performance.now() - start;

  const ms = (x: number) => `${x.toFixed(0)} ms`;
  const server = run.server.costs;
  console.log(
    `secagg P = ${P}, n = ${n} (3 dropped after ShareKeys): whole run ${ms(whole)}; one client's masked input alone ${ms(maskOne)}; ` +
      `server unmasking ${ms(server.Unmasking.milliseconds)}; client overhead ${JSON.stringify(secAggOverhead(run.clients.get('client-0')!.costs, P))}`,
  );
  expect(whole).toBeLessThan(10_000);
  expect(maskOne).toBeLessThan(1500);
});
