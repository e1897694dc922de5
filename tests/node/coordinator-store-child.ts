// Commits rounds to the coordinator store at argv[2] until it is killed (the crash test of
// tests/node/coordinator-store.test.ts): "begin r" before committing round r, "committed r ms"
// after, so that the parent knows which commit a kill interrupted.
import { CoordinatorStore } from '../../server/federated/store.js';
import { layoutOf, roundLog, roundState } from './coordinator-rounds.js';

const store = CoordinatorStore.open(process.argv[2]!);
const layout = layoutOf(Number(process.argv[3]));
for (let round = (store.load()?.round ?? 0) + 1; ; round++) {
  const state = roundState(round, layout);
  const log = roundLog(round);
  process.stdout.write(`begin ${round}\n`);
  const start = performance.now();
  store.commitRound(state, log);
  process.stdout.write(`committed ${round} ${(performance.now() - start).toFixed(1)}\n`);
}
