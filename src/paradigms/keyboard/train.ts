// Language-model training with truncated backpropagation through time, as PyTorch's
// word_language_model example: the token stream is cut into B parallel streams, each step takes
// the next T tokens of every stream, and the recurrent state is carried from one step to the next
// (its values, not its graph), so the model sees context beyond T without backpropagating through
// it. Evaluation runs the same way over each user's held-out stream and scores every next word
// with the keyboard metrics (metrics.ts).
import { backward } from '../../engine/autograd.js';
import { noGrad } from '../../engine/graph.js';
import type { Engine } from '../../engine/engine.js';
import { addScaledInPlace, softmaxCrossEntropyIndices } from '../../engine/ops/index.js';
import type { Optimizer } from '../../engine/optim.js';
import type { RecurrentState } from '../../engine/recurrent.js';
import { NextWordTally, type NextWordMetrics } from './metrics.js';
import type { KeyboardModel } from './model.js';

/** B streams of equal length cut from `tokens` in order (the remainder is dropped), as [B, L] rows. */
export function batchify(tokens: ArrayLike<number>, streams: number): { rows: Uint32Array; streams: number; length: number } {
  if (!Number.isInteger(streams) || streams < 1) throw new Error(`batchify: streams ${streams} must be a positive integer`);
  const length = Math.floor(tokens.length / streams);
  if (length < 2) throw new Error(`batchify: ${tokens.length} tokens make streams of ${length}; at least 2 tokens per stream are needed (an input and its next word)`);
  const rows = new Uint32Array(streams * length);
  for (let b = 0; b < streams; b++) for (let i = 0; i < length; i++) rows[b * length + i] = tokens[b * length + i]!;
  return { rows, streams, length };
}

/** batchify's B streams, each as its own array (views into one buffer): what an n-gram scores stream by stream. */
export function tokenStreams(tokens: ArrayLike<number>, streams: number): Uint32Array[] {
  const b = batchify(tokens, streams);
  return Array.from({ length: b.streams }, (_, s) => b.rows.subarray(s * b.length, (s + 1) * b.length));
}

/** The windows of a batchified stream: start positions t (inputs t .. t + T - 1, targets one later), the last one shorter. */
function windows(length: number, steps: number): { start: number; steps: number }[] {
  const out: { start: number; steps: number }[] = [];
  for (let t = 0; t + 1 < length; t += steps) out.push({ start: t, steps: Math.min(steps, length - 1 - t) });
  return out;
}

/** Inputs [B, T] (ids as f32) and targets [B * T] of the window of every stream from `start`: tokens start .. start + steps - 1, targets one later. */
export function streamWindow(data: { rows: Uint32Array; streams: number; length: number }, start: number, steps: number): { inputs: Float32Array<ArrayBuffer>; targets: Uint32Array } {
  const inputs = new Float32Array(data.streams * steps);
  const targets = new Uint32Array(data.streams * steps);
  for (let b = 0; b < data.streams; b++) {
    for (let t = 0; t < steps; t++) {
      inputs[b * steps + t] = data.rows[b * data.length + start + t]!;
      targets[b * steps + t] = data.rows[b * data.length + start + t + 1]!;
    }
  }
  return { inputs, targets };
}

/** One-hot rows of the targets (the benchmark's TF.js and jax-js peers take these); the error speaks of token ids and the vocabulary. */
export function oneHotRows(targets: Uint32Array, vocab: number): Float32Array<ArrayBuffer> {
  checkTokenIds(targets, vocab);
  const out = new Float32Array(targets.length * vocab);
  targets.forEach((c, r) => (out[r * vocab + c] = 1));
  return out;
}

/** Throws unless every target token id is below the vocabulary (the ids are unsigned integers). */
function checkTokenIds(targets: Uint32Array, vocab: number): void {
  for (const c of targets) {
    if (c >= vocab) throw new Error(`language model: token id ${c} is outside the ${vocab}-word vocabulary`);
  }
}

/** Keeps a state's tensors past the step's scope, and frees the previous one. */
function carry(engine: Engine, previous: RecurrentState | undefined, next: RecurrentState): RecurrentState {
  for (const t of [...next.h, ...(next.c ?? [])]) engine.keep(t);
  release(previous);
  return next;
}

function release(state: RecurrentState | undefined): void {
  for (const t of [...(state?.h ?? []), ...(state?.c ?? [])]) t.dispose();
}

export interface LanguageModelOptions {
  /** B: parallel streams per step. */
  batchSize: number;
  /** T: tokens per stream per step (the truncation of backpropagation through time). */
  steps: number;
  epochs: number;
  /** Steps between loss readbacks (default 20). */
  logEvery?: number;
  onProgress?: (p: { step: number; totalSteps: number; loss: number; tokens: number; elapsedMs: number }) => void | Promise<void>;
  /** Runs after each backward, before the optimizer step (FedProx adds its proximal gradient here). */
  afterBackward?: () => void;
}

export interface LanguageModelResult {
  steps: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  losses: { step: number; loss: number }[];
  /** The mean loss over the last epoch's steps (summed on the GPU, read once). */
  lastEpochLoss: number;
}

/** Trains `model` on one token stream (users' texts joined) with truncated BPTT; the state starts at zero each epoch. */
export async function trainLanguageModel(engine: Engine, model: KeyboardModel, optimizer: Optimizer, tokens: ArrayLike<number>, options: LanguageModelOptions): Promise<LanguageModelResult> {
  const op = 'trainLanguageModel';
  for (const [what, v] of [['batchSize', options.batchSize], ['steps', options.steps], ['epochs', options.epochs], ['logEvery', options.logEvery ?? 20]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${op}: ${what} ${v} must be a positive integer`);
  }
  const data = batchify(tokens, options.batchSize);
  const plan = windows(data.length, options.steps);
  const totalSteps = plan.length * options.epochs;
  const logEvery = options.logEvery ?? 20;
  const ctx = engine.context();
  const losses: LanguageModelResult['losses'] = [];
  const lastEpochSum = ctx.keep(ctx.zeros([], `${op}.lastEpochSum`));
  model.train();
  const start = performance.now();
  let step = 0;
  let trained = 0;
  let lastEpochLoss: number;
  try {
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      let state: RecurrentState | undefined;
      try {
        for (const w of plan) {
          const { inputs, targets } = streamWindow(data, w.start, w.steps);
          checkTokenIds(targets, model.vocab);
          const loss = await ctx.scope(async () => {
            const { logits, state: next } = model.run(ctx.tensor(inputs, [data.streams, w.steps], `${op}.inputs`), state);
            const value = softmaxCrossEntropyIndices(logits, ctx.tensor(targets, [targets.length], `${op}.targets`));
            if (epoch === options.epochs - 1) addScaledInPlace(lastEpochSum, value);
            backward(value);
            options.afterBackward?.();
            optimizer.step();
            optimizer.zeroGrad();
            state = carry(ctx, state, next);
            const read = (step + 1) % logEvery === 0 || step + 1 === totalSteps ? value.item() : null;
            await ctx.flush();
            return read;
          });
          step++;
          trained += targets.length;
          if (loss) {
            const l = await loss;
            losses.push({ step, loss: l });
            await options.onProgress?.({ step, totalSteps, loss: l, tokens: trained, elapsedMs: performance.now() - start });
          }
        }
      } finally {
        release(state);
      }
    }
    lastEpochLoss = (await lastEpochSum.item()) / plan.length;
  } finally {
    lastEpochSum.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  return { steps: step, tokens: trained, seconds, tokensPerSecond: trained / seconds, losses, lastEpochLoss };
}

/**
 * Next-word recall and perplexity of `model` on a held-out token stream, read in `streams`
 * parallel streams of `steps`-token windows with the state carried (each position's context is
 * everything before it in its stream). Targets in `exclude` are not counted (metrics.ts). With
 * `into`, the positions are also added to that tally (several users pooled).
 */
export async function evaluateLanguageModel(engine: Engine, model: KeyboardModel, tokens: ArrayLike<number>, options: { streams: number; steps: number; exclude: readonly number[]; into?: NextWordTally }): Promise<NextWordMetrics> {
  const data = batchify(tokens, options.streams);
  const tally = new NextWordTally(options.exclude);
  const ctx = engine.context();
  const wasTraining = model.training;
  model.eval();
  let state: RecurrentState | undefined;
  try {
    for (const w of windows(data.length, options.steps)) {
      const { inputs, targets } = streamWindow(data, w.start, w.steps);
      await ctx.scope(async () => {
        const { logits, state: next } = noGrad(() => model.run(ctx.tensor(inputs, [data.streams, w.steps], 'evaluate.inputs'), state));
        state = carry(ctx, state, next);
        tally.addLogitRows(await logits.data(), model.vocab, targets);
      });
    }
  } finally {
    release(state);
    model.train(wasTraining);
  }
  options.into?.merge(tally);
  return tally.result();
}

