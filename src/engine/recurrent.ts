// Recurrent layers: LSTM (optionally CIFG, the coupled input and forget gate of Hard et al. 2018)
// and GRU, batch first, several layers stacked. Per layer, the input side of the gates for every
// step is one linear() ([B*T, in] x [in, G*H]); the recurrence is the recurrent op (one fused
// cell kernel per step, ops/recurrent.ts). Parameters are named and laid out as PyTorch's
// nn.LSTM / nn.GRU (weight_ih_l0 [G*H, in], weight_hh_l0 [G*H, H], bias_ih_l0, bias_hh_l0, gate
// blocks i, f, g, o or r, z, n), so weights line up; CIFG has no input-gate block (G = 3).
import type { Engine } from './engine.js';
import { Module } from './module.js';
import { gateCount, linear, recurrent, reshape, type RecurrentCell } from './ops/index.js';
import type { Parameter } from './parameters.js';
import { randomUniform } from './random.js';
import { shapeString, type Tensor } from './tensor.js';

export interface RecurrentOptions {
  /** Stacked layers, each fed the previous one's hidden states (default 1). */
  layers?: number;
  bias?: boolean;
  /** Seed of the initial weights; by default the engine's next seed. */
  seed?: number;
}

export interface LSTMOptions extends RecurrentOptions {
  /** Coupled input and forget gate: i = 1 - f, three gate blocks (f, g, o). */
  cifg?: boolean;
}

/** Per layer, a state [B, H]: the hidden state h and, for LSTM, the cell state c. */
export interface RecurrentState {
  h: Tensor[];
  c: Tensor[] | null;
}

export interface RecurrentOutput {
  /** The last layer's hidden state at every step, [B, T, H]. */
  output: Tensor;
  /**
   * The state after the last step, detached from the graph: passed as the next batch's initial
   * state, it carries the values but no gradient back into this batch (truncated BPTT).
   */
  state: RecurrentState;
}

interface LayerWeights {
  weightIH: Parameter;
  weightHH: Parameter;
  biasIH: Parameter | null;
  biasHH: Parameter | null;
}

/** An LSTM or GRU over [B, T, in] (batch first). */
export abstract class Recurrent extends Module {
  readonly layers: readonly LayerWeights[];

  protected constructor(
    engine: Engine,
    readonly cell: RecurrentCell,
    readonly inputSize: number,
    readonly hiddenSize: number,
    options: RecurrentOptions,
  ) {
    super();
    const count = options.layers ?? 1;
    if (![inputSize, hiddenSize, count].every((n) => Number.isInteger(n) && n > 0)) {
      throw new Error(`${this.describe()}: input size, hidden size and layers must be positive integers, got ${inputSize}, ${hiddenSize}, ${count}`);
    }
    const G = gateCount(cell);
    const H = hiddenSize;
    // PyTorch's initialisation: every weight and bias uniform in +-1/sqrt(H).
    const bound = 1 / Math.sqrt(H);
    let seed = options.seed ?? engine.nextSeed();
    const uniform = (shape: number[], name: string) => engine.parameter(randomUniform(shape.reduce((a, b) => a * b, 1), seed++, -bound, bound), shape, name);
    this.layers = Array.from({ length: count }, (_, l) => ({
      weightIH: uniform([G * H, l === 0 ? inputSize : H], `weight_ih_l${l}`),
      weightHH: uniform([G * H, H], `weight_hh_l${l}`),
      biasIH: options.bias === false ? null : uniform([G * H], `bias_ih_l${l}`),
      biasHH: options.bias === false ? null : uniform([G * H], `bias_hh_l${l}`),
    }));
  }

  private describe(): string {
    return `${this.constructor.name}(${this.inputSize}, ${this.hiddenSize})`;
  }

  override ownParameters(): [string, Parameter][] {
    return this.layers.flatMap((w, l) => {
      const named: [string, Parameter | null][] = [
        [`weight_ih_l${l}`, w.weightIH],
        [`weight_hh_l${l}`, w.weightHH],
        [`bias_ih_l${l}`, w.biasIH],
        [`bias_hh_l${l}`, w.biasHH],
      ];
      return named.filter((e): e is [string, Parameter] => e[1] !== null);
    });
  }

  /** The last layer's hidden states [B, T, H] from zero initial states. */
  forward(x: Tensor): Tensor {
    return this.run(x).output;
  }

  /** Runs the layers over x [B, T, in] from `state` (zeros when none) and gives the final state too. */
  run(x: Tensor, state?: RecurrentState): RecurrentOutput {
    const op = this.describe();
    const lstm = this.cell !== 'gru';
    const H = this.hiddenSize;
    if (x.rank !== 3 || x.shape[2] !== this.inputSize) {
      throw new Error(`${op}: input ${x.name} has shape ${shapeString(x.shape)}, expected [batch, steps, ${this.inputSize}]`);
    }
    const [B, T] = x.shape as [number, number];
    if (state) this.checkState(op, state, B);
    const h: Tensor[] = [];
    const c: Tensor[] = [];
    let input = x;
    this.layers.forEach((w, l) => {
      const inFeatures = input.shape[2]!;
      const gatesX = reshape(linear(reshape(input, [B * T, inFeatures]), w.weightIH, w.biasIH), [B, T, -1]);
      const h0 = state?.h[l] ?? x.engine.zeros([B, H], `${op}.h0`);
      const c0 = lstm ? (state?.c?.[l] ?? x.engine.zeros([B, H], `${op}.c0`)) : null;
      const result = recurrent(this.cell, gatesX, h0, c0, w.weightHH, w.biasHH);
      h.push(result.h);
      if (result.c) c.push(result.c);
      input = result.output;
    });
    return { output: input, state: { h, c: lstm ? c : null } };
  }

  private checkState(op: string, state: RecurrentState, B: number): void {
    const lstm = this.cell !== 'gru';
    const want = `${this.layers.length} h${lstm ? ' and c' : ''} tensors of shape [${B}, ${this.hiddenSize}]`;
    const list = (ts: Tensor[] | null) => (ts ? `[${ts.map((t) => shapeString(t.shape)).join(', ')}]` : 'none');
    const fits = (ts: Tensor[] | null) => ts !== null && ts.length === this.layers.length && ts.every((t) => t.rank === 2 && t.shape[0] === B && t.shape[1] === this.hiddenSize);
    if (!fits(state.h) || (lstm ? !fits(state.c) : state.c !== null)) {
      throw new Error(`${op}: initial state h ${list(state.h)}, c ${list(state.c)}; expected ${want}${lstm ? '' : ' and no c'}`);
    }
  }
}

/** nn.LSTM (batch first), or its CIFG variant with `cifg`. */
export class LSTM extends Recurrent {
  constructor(engine: Engine, inputSize: number, hiddenSize: number, options: LSTMOptions = {}) {
    super(engine, options.cifg ? 'cifg' : 'lstm', inputSize, hiddenSize, options);
  }
}

/** nn.GRU (batch first): n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h = (1 - z) n + z h_prev. */
export class GRU extends Recurrent {
  constructor(engine: Engine, inputSize: number, hiddenSize: number, options: RecurrentOptions = {}) {
    super(engine, 'gru', inputSize, hiddenSize, options);
  }
}
