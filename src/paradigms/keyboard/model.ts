// The next-word keyboard model, as Hard et al. 2018 (Gboard): word embeddings, a recurrent layer
// (CIFG LSTM by default) and output logits through the same embedding table (TiedEmbedding, with
// a projection from the hidden size down to the embedding size when they differ). Tying makes the
// output layer nearly free: the model's size is the table, the recurrent weights and the
// projection.
import type { Engine } from '../../engine/engine.js';
import { TiedEmbedding } from '../../engine/layers.js';
import { Module } from '../../engine/module.js';
import { reshape } from '../../engine/ops/index.js';
import { GRU, LSTM, type Recurrent, type RecurrentState } from '../../engine/recurrent.js';
import { shapeString, type Tensor } from '../../engine/tensor.js';

export interface KeyboardModelOptions {
  vocab: number;
  /** Embedding width, also the width the output logits are computed at (tied). */
  embedding: number;
  hidden: number;
  layers?: number;
  /** 'cifg' (default, Gboard's), 'lstm' or 'gru'. */
  cell?: 'cifg' | 'lstm' | 'gru';
  seed?: number;
}

export class KeyboardModel extends Module {
  /** The table for the input words and the output logits, with the projection hidden -> embedding when they differ. */
  readonly embedding: TiedEmbedding;
  readonly rnn: Recurrent;
  readonly vocab: number;
  /** What the model is, as a federated coordinator and its clients name it: 'keyboard-cifg-v1000-e32-h64-l1'. */
  readonly spec: string;

  constructor(engine: Engine, options: KeyboardModelOptions) {
    super();
    const { vocab, embedding, hidden } = options;
    const seed = options.seed ?? engine.nextSeed();
    this.vocab = vocab;
    this.embedding = new TiedEmbedding(engine, vocab, embedding, { hidden, seed });
    const cell = options.cell ?? 'cifg';
    const rnnOptions = { layers: options.layers ?? 1, seed: seed + 10 };
    this.spec = `keyboard-${cell}-v${vocab}-e${embedding}-h${hidden}-l${rnnOptions.layers}`;
    this.rnn = cell === 'gru' ? new GRU(engine, embedding, hidden, rnnOptions) : new LSTM(engine, embedding, hidden, { ...rnnOptions, cifg: cell === 'cifg' });
    // One flat store for the whole model (what optimizers and federated payloads work on).
    this.store();
  }

  override children(): [string, Module][] {
    return [
      ['embedding', this.embedding],
      ['rnn', this.rnn],
    ];
  }

  /** Logits [B*T, vocab] for token ids [B, T] (as f32), from zero states. */
  forward(ids: Tensor): Tensor {
    return this.run(ids).logits;
  }

  /** Logits [B*T, vocab] for ids [B, T] from `state`, and the state after the last step (detached: truncated BPTT). */
  run(ids: Tensor, state?: RecurrentState): { logits: Tensor; state: RecurrentState } {
    if (ids.rank !== 2) throw new Error(`KeyboardModel: ids ${ids.name} have shape ${shapeString(ids.shape)}, expected [batch, steps]`);
    const [B, T] = ids.shape as [number, number];
    const { output, state: next } = this.rnn.run(this.embedding.forward(ids), state);
    return { logits: this.embedding.logits(reshape(output, [B * T, this.rnn.hiddenSize])), state: next };
  }
}
