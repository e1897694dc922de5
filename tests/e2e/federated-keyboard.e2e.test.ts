// End-to-end: the federated keyboard on one machine (scripts/federated-keyboard.mjs): a coordinator
// in Node with secure aggregation, three users as headless Chromium pages and one as a Node
// client. One page is closed in the middle of a round and comes back; the coordinator is killed
// after a round and restarted on its SQLite file. The rounds must complete, the coordinator must
// resume at the same round with the same weights, the model must learn, and no frame any client
// sent may carry a stretch of its user's text (every frame is captured: Playwright's WebSocket
// events for the pages, the Node client's own log of what it sent).
import { expect, test } from 'vitest';
import { runFederatedKeyboard } from '../../scripts/federated-keyboard.mjs';

test('users train a keyboard together through a coordinator that sees only masked updates, survives a client killed mid-round and its own restart', async () => {
  const r = await runFederatedKeyboard({
    query: { strategies: 'fedavg', rounds: 5, killClientAtRound: 2, restartAfterRound: 3, trainTokens: 2000, testTokens: 600, centralEpochs: 1, personalEpochs: 1 },
    timeoutMs: 900_000,
  });
  console.log(`federated keyboard e2e: ${JSON.stringify(r)}`);
  expect(r.rounds).toBe(5);
  // Resumed after round 3 with bit-identical weights (their hash), and went on to round 5.
  expect(r.server_restarts_survived).toBe(1);
  expect(r.clients_killed).toBe(1);
  expect(r.dropouts_survived).toBeGreaterThanOrEqual(1);
  // The model learns: the clients' training loss falls over the rounds.
  expect(r.train_losses.at(-1)!).toBeLessThan(r.train_losses[0]! - 0.5);
  // Only hellos, secure aggregation's messages and evaluations: never a plain update, never text.
  expect(Object.keys(r.frame_types).sort()).toEqual(['evaluation', 'hello', 'secagg']);
  expect(r.frames_checked).toBeGreaterThan(40);
  expect(r.text_in_frames).toBe(0);
  // Every user scored the final model and personalised it.
  for (const u of Object.values(r.users)) {
    expect(u.global_top1).toBeGreaterThan(0);
    expect(u.personalised_top1).toBeGreaterThan(0);
  }
  expect(r.secagg_overhead_bytes).toBeGreaterThan(0);
  // The coordinator's page showed every round and, of the last one, masked bytes only.
  const view = r.coordinator_view as { round: string; masked: number; rounds: number; globalTop1: string };
  expect(view.round).toBe('5');
  expect(view.rounds).toBe(5); // from the store: the rounds before the restart too
  expect(view.masked).toBeGreaterThanOrEqual(2);
  expect(view.globalTop1).toMatch(/%$/);
}, 1_000_000);
