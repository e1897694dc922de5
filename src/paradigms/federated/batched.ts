// All of a round's clients trained together: K replicas of the model in one [K, P] block, one
// batched forward and backward per local step for all K (one kernel per layer, Replicas.forward)
// and one SGD step over the block. Client k takes exactly the steps and batches it takes alone
// (the same shuffles as FederatedClient.fit); a client with fewer steps than the longest has its
// weights captured after its last step, so the steps the block goes on taking cannot change its
// update. The loss is the sum of the clients' batch means, so each replica gets the gradient of
// its own mean loss.
import { backward } from '../../engine/autograd.js';
import type { Engine } from '../../engine/engine.js';
import { addScaledInPlace, mul, reshape, scale, softmaxCrossEntropyRows, sum } from '../../engine/ops/index.js';
import { SGD } from '../../engine/optim.js';
import { permutation } from '../../engine/random.js';
import { replicate } from '../../engine/replicas.js';
import type { Tensor } from '../../engine/tensor.js';
import { oneHot } from '../train.js';
import { isTokens, localSeed, type FederatedClient } from './client.js';
import { checkLayout, checkRoundConfig, gatherWeights, trainableLayout, type ClientUpdate, type GlobalModel } from './protocol.js';

/** The local updates of `clients` for the round in `message`, trained together; as many as sequential fit() would give, in order. */
export async function trainBatched(engine: Engine, clients: readonly FederatedClient[], message: GlobalModel): Promise<ClientUpdate[]> {
  const op = 'trainBatched';
  const { config, layout } = message;
  checkRoundConfig(op, config);
  if (clients.length === 0) throw new Error(`${op}: no clients`);
  const source = clients[0]!.model;
  const data = clients.map((c) => {
    if (isTokens(c.data)) throw new Error(`${op}: client ${c.id} holds a text; batched rounds train Dense stacks (Replicas.forward), so train a next-word model with fit()`);
    return c.data;
  });
  for (const [k, c] of clients.entries()) {
    if (c.ownOptimizer) throw new Error(`${op}: client ${c.id} has an optimizer of its own; batched training steps every client with SGD (train it with fit())`);
    const d = data[k]!;
    if (d.count < config.batchSize) throw new Error(`${op}: client ${c.id}: batch size ${config.batchSize} is larger than its ${d.count} examples`);
    if (d.features !== data[0]!.features || d.classes !== data[0]!.classes) {
      throw new Error(`${op}: client ${c.id} has ${d.features} features and ${d.classes} classes; client ${clients[0]!.id} has ${data[0]!.features} and ${data[0]!.classes}`);
    }
    checkLayout(`${op}: client ${c.id}`, trainableLayout(c.model), layout);
  }
  clients[0]!.load(engine, op, message);
  const K = clients.length;
  const B = config.batchSize;
  const { features, classes } = data[0]!;
  const perEpoch = data.map((d) => Math.floor(d.count / B));
  const steps = clients.map((c) => c.steps(config));
  const longest = Math.max(...steps);
  const replicas = replicate(source, K);
  const optimizer = new SGD(replicas, { lr: config.learningRate });
  const ctx = engine.context();
  const lossSums = engine.keep(engine.zeros([K], `${op}.lossSums`));
  // FedProx: the block as loaded, so that mu (w - w_global) is two kernels over the whole block.
  const start = config.proximalMu > 0 ? engine.keep(engine.empty([replicas.store.weights.size], `${op}.globalBlock`)) : null;
  if (start) engine.copy(replicas.store.weights, start);
  const locals: (Tensor | null)[] = new Array<Tensor | null>(K).fill(null);
  const x = new Float32Array(K * B * features);
  const targets = new Float32Array(K * B * classes);
  const labels = new Uint32Array(K * B);
  const active = new Float32Array(K);
  const orders: { epoch: number; order: Uint32Array }[] = clients.map(() => ({ epoch: -1, order: new Uint32Array(0) }));
  const seeds = clients.map((c) => localSeed(config, c.seed));
  try {
    for (let s = 0; s < longest; s++) {
      data.forEach((d, k) => {
        // A finished client repeats its last batch; its weights were captured already.
        const at = Math.min(s, steps[k]! - 1);
        const epoch = Math.floor(at / perEpoch[k]!);
        const b = at % perEpoch[k]!;
        if (orders[k]!.epoch !== epoch) orders[k] = { epoch, order: permutation(d.count, seeds[k]! + epoch) };
        const rows = orders[k]!.order.subarray(b * B, (b + 1) * B);
        for (let i = 0; i < B; i++) {
          const r = rows[i]!;
          x.set(d.inputs.subarray(r * features, (r + 1) * features), (k * B + i) * features);
          labels[k * B + i] = d.labels[r]!;
        }
        active[k] = s < steps[k]! ? 1 : 0;
      });
      oneHot(labels, classes, targets);
      await ctx.scope(async () => {
        const out = replicas.forward(ctx.tensor(x, [K, B, features], `${op}.inputs`));
        const rowLosses = softmaxCrossEntropyRows(reshape(out, [K * B, classes]), ctx.tensor(targets, [K * B, classes], `${op}.targets`));
        backward(scale(sum(rowLosses), 1 / B));
        const perClient = scale(sum(reshape(rowLosses, [K, B]), 1), 1 / B);
        addScaledInPlace(lossSums, mul(perClient, ctx.tensor(active, [K], `${op}.active`)));
        if (start) {
          const grads = replicas.store.grads();
          addScaledInPlace(grads, replicas.store.weights, config.proximalMu);
          addScaledInPlace(grads, start, -config.proximalMu);
        }
        optimizer.step();
        optimizer.zeroGrad();
        clients.forEach((c, k) => {
          if (s + 1 === steps[k]) locals[k] = engine.keep(gatherWeights(engine, replicas.model(k), layout, `client ${c.id}.weights`));
        });
        await ctx.flush();
      });
    }
    const losses = await lossSums.data();
    return clients.map((c, k) => {
      const local = locals[k]!;
      locals[k] = null;
      return c.answer(engine, message, local, losses[k]! / steps[k]!);
    });
  } finally {
    for (const t of locals) t?.dispose();
    lossSums.dispose();
    start?.dispose();
    optimizer.dispose();
    replicas.dispose();
  }
}
