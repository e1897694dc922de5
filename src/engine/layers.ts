// Layers: Dense, activations, Dropout, Flatten and Sequential with named layers. Parameters
// are listed under stable dotted names (`fc1.weight`), which freezing, masks, optimizer groups
// and saved weights all use.
import type { Engine } from './engine.js';
import { noGrad } from './graph.js';
import { addBias, dropout, matmul, reshape, unary, type UnaryOp } from './ops/index.js';
import { randomUniform } from './random.js';
import type { Parameter, Tensor } from './tensor.js';

export abstract class Module {
  training = true;

  abstract forward(x: Tensor): Tensor;

  /** Direct sub-modules by local name. */
  children(): [string, Module][] {
    return [];
  }

  /** This module's own parameters by local name. */
  ownParameters(): [string, Parameter][] {
    return [];
  }

  /** Every parameter under this module, by dotted name; also names each parameter so. */
  parameters(prefix = ''): Map<string, Parameter> {
    const out = new Map<string, Parameter>();
    for (const [name, p] of this.ownParameters()) {
      p.name = prefix + name;
      out.set(p.name, p);
    }
    for (const [name, child] of this.children()) {
      for (const [n, p] of child.parameters(`${prefix}${name}.`)) out.set(n, p);
    }
    return out;
  }

  /** Every sub-module by dotted name, depth first, in order. */
  modules(prefix = ''): Map<string, Module> {
    const out = new Map<string, Module>();
    for (const [name, child] of this.children()) {
      out.set(prefix + name, child);
      for (const [n, m] of child.modules(`${prefix}${name}.`)) out.set(n, m);
    }
    return out;
  }

  /** Parameters whose name is `name` or lies under the layer `name`; throws when none does. */
  select(name: string, op = 'select'): Parameter[] {
    const all = this.parameters();
    const found = [...all].filter(([n]) => n === name || n.startsWith(name + '.')).map(([, p]) => p);
    if (found.length === 0) {
      throw new Error(`${op}: no layer or parameter named "${name}" (layers: ${[...this.modules().keys()].join(', ') || 'none'}; parameters: ${[...all.keys()].join(', ')})`);
    }
    return found;
  }

  /** Freezes the named layers or parameters (all when none is named). */
  freeze(...names: string[]): this {
    for (const p of names.length ? names.flatMap((n) => this.select(n, 'freeze')) : this.parameters().values()) p.freeze();
    return this;
  }

  unfreeze(...names: string[]): this {
    for (const p of names.length ? names.flatMap((n) => this.select(n, 'unfreeze')) : this.parameters().values()) p.unfreeze();
    return this;
  }

  /** Parameters that are not frozen. */
  trainableParameters(): Map<string, Parameter> {
    return new Map([...this.parameters()].filter(([, p]) => !p.frozen));
  }

  train(on = true): this {
    this.training = on;
    for (const [, c] of this.children()) c.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Forward without recording the graph (inference). */
  predict(x: Tensor): Tensor {
    return noGrad(() => this.forward(x));
  }

  dispose(): void {
    for (const p of this.parameters().values()) p.dispose();
  }
}

export interface DenseOptions {
  bias?: boolean;
  /** Seed of the initial weights; by default the engine's next seed. */
  seed?: number;
}

/**
 * y = x W^T + b, with W stored [out, in] as PyTorch's nn.Linear (so saved weights line up),
 * initialised as PyTorch does: uniform in +-1/sqrt(in).
 */
export class Dense extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(
    engine: Engine,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: DenseOptions = {},
  ) {
    super();
    if (!Number.isInteger(inFeatures) || !Number.isInteger(outFeatures) || inFeatures <= 0 || outFeatures <= 0) {
      throw new Error(`Dense: features must be positive integers, got in=${inFeatures} out=${outFeatures}`);
    }
    const seed = options.seed ?? engine.nextSeed();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = engine.parameter(randomUniform(inFeatures * outFeatures, seed, -bound, bound), [outFeatures, inFeatures], 'weight');
    this.bias = options.bias === false ? null : engine.parameter(randomUniform(outFeatures, seed + 1, -bound, bound), [outFeatures], 'bias');
  }

  override ownParameters(): [string, Parameter][] {
    return this.bias ? [['weight', this.weight], ['bias', this.bias]] : [['weight', this.weight]];
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 2 || x.shape[1] !== this.inFeatures) {
      throw new Error(`Dense(${this.inFeatures} -> ${this.outFeatures}): input ${x.name} has shape [${x.shape.join(',')}], expected [batch, ${this.inFeatures}]`);
    }
    const y = matmul(x, this.weight, { transB: true });
    return this.bias ? addBias(y, this.bias) : y;
  }
}

/** An elementwise activation as a layer. */
export class Activation extends Module {
  constructor(
    readonly op: UnaryOp,
    readonly alpha = 0,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return unary(this.op, x, this.alpha);
  }
}

export const ReLU = () => new Activation('relu');
export const LeakyReLU = (slope = 0.01) => new Activation('leaky_relu', slope);
export const GELU = () => new Activation('gelu');
export const Sigmoid = () => new Activation('sigmoid');
export const Tanh = () => new Activation('tanh');

export class Dropout extends Module {
  constructor(readonly rate: number) {
    super();
    if (!(rate >= 0 && rate < 1)) throw new Error(`Dropout: rate ${rate} must be in [0, 1)`);
  }

  forward(x: Tensor): Tensor {
    return this.training && this.rate > 0 ? dropout(x, this.rate) : x;
  }
}

/** [batch, ...] to [batch, features], as a view. */
export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return reshape(x, [x.shape[0] ?? 1, -1]);
  }
}

/** Layers applied in order, each under a name. */
export class Sequential extends Module {
  private readonly layers: [string, Module][];

  constructor(layers: Record<string, Module> | [string, Module][]) {
    super();
    this.layers = Array.isArray(layers) ? [...layers] : Object.entries(layers);
    const seen = new Set<string>();
    for (const [name] of this.layers) {
      if (!name || name.includes('.')) throw new Error(`Sequential: layer name "${name}" must be non-empty and contain no dot`);
      if (seen.has(name)) throw new Error(`Sequential: layer name "${name}" is used twice`);
      seen.add(name);
    }
  }

  override children(): [string, Module][] {
    return this.layers;
  }

  /** Layer names in order. */
  names(): string[] {
    return this.layers.map(([n]) => n);
  }

  /** The layer with this (dotted) name. */
  get(name: string): Module {
    const m = this.modules().get(name);
    if (!m) throw new Error(`Sequential.get: no layer named "${name}" (layers: ${[...this.modules().keys()].join(', ')})`);
    return m;
  }

  /** Puts `module` in place of the layer `name` and returns the old one (which the caller may dispose). */
  replace(name: string, module: Module): Module {
    const i = this.layers.findIndex(([n]) => n === name);
    if (i < 0) {
      const dot = name.lastIndexOf('.');
      const parent = dot > 0 ? this.get(name.slice(0, dot)) : null;
      if (parent instanceof Sequential) return parent.replace(name.slice(dot + 1), module);
      throw new Error(`Sequential.replace: no layer named "${name}" (layers: ${this.names().join(', ')})`);
    }
    const old = this.layers[i]![1];
    this.layers[i] = [name, module];
    return old;
  }

  /** The layers up to and including `name`, as a new Sequential sharing their parameters. */
  upTo(name: string): Sequential {
    const i = this.layers.findIndex(([n]) => n === name);
    if (i < 0) throw new Error(`Sequential.upTo: no layer named "${name}" (layers: ${this.names().join(', ')})`);
    return new Sequential(this.layers.slice(0, i + 1));
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const [, layer] of this.layers) y = layer.forward(y);
    return y;
  }
}
