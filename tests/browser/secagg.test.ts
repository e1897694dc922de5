// Secure aggregation (src/paradigms/federated/secagg.ts) in Chromium: the same module, on the
// page's WebCrypto, runs a small aggregation end to end with one client dropped after ShareKeys
// and one silent in Unmasking, and recovers the float64 sum of the survivors' clipped updates.
import { expect, test } from 'vitest';
import { secAggSettings, type SecAggConfig } from '../../src/paradigms/federated/secagg.js';
import { aggregate, clippedSum, maxDifference, randomUpdates } from '../secagg-run.js';

test('an aggregation of 6 clients with dropouts recovers the survivors\' sum in the page', async () => {
  expect(globalThis.window).toBeDefined();
  const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
  const P = 1000;
  const updates = randomUpdates(ids.length, P, 77);
  const config: SecAggConfig = { session: 'browser', clients: ids.length, length: P, range: 1, bits: 16 };
  const { result, run } = await aggregate(config, ids, updates, { MaskedInputCollection: ['c'], Unmasking: ['e'] });
  expect(result.survivors).toEqual(['a', 'b', 'd', 'e', 'f']);
  expect(result.dropped).toEqual(['c']);
  expect(result.weightTotal).toBe(5);
  const want = clippedSum(ids, updates, result.survivors, 1);
  expect(maxDifference(result.sum, want)).toBeLessThanOrEqual(5 * secAggSettings(config).step + 1e-5);
  expect(run.maskedInputs.get('a')!.maskedInput.length).toBe(4 * (P + 1));
});
