// Containers: Sequential (layers applied in order) and MultiHead (a shared trunk with named
// task heads, returning a record of the heads' outputs). Both gather their parameters into one
// flat store when built, and again when a layer is replaced (module.ts).
import { Activation, isFusing } from './layers.js';
import { Module, type AnyModule } from './module.js';
import { Tensor } from './tensor.js';

/** Throws unless every name is non-empty, without a dot, and used once. */
function checkNames(what: string, names: readonly string[], reserved: readonly string[] = []): void {
  const seen = new Set<string>(reserved);
  for (const name of names) {
    if (!name || name.includes('.')) throw new Error(`${what}: layer name "${name}" must be non-empty and contain no dot`);
    if (seen.has(name)) throw new Error(`${what}: layer name "${name}" is used twice${reserved.includes(name) ? ' (it is reserved)' : ''}`);
    seen.add(name);
  }
}

/** Gathers the container's parameters into its flat store, when it has any. */
function gather(m: AnyModule): void {
  if (m.parameters().size > 0) m.store();
}

/** Layers applied in order, each under a name. */
export class Sequential extends Module {
  private readonly layers: [string, Module][];

  constructor(layers: Record<string, Module> | [string, Module][]) {
    super();
    this.layers = Array.isArray(layers) ? [...layers] : Object.entries(layers);
    checkNames('Sequential', this.names());
    gather(this);
  }

  override children(): [string, Module][] {
    return this.layers;
  }

  /** Layer names in order. */
  names(): string[] {
    return this.layers.map(([n]) => n);
  }

  /** The layers up to and including `name`, as a new Sequential sharing their parameters. */
  upTo(name: string): Sequential {
    const i = this.layers.findIndex(([n]) => n === name);
    if (i < 0) throw new Error(`Sequential.upTo: no layer named "${name}" (layers: ${this.names().join(', ')})`);
    return new Sequential(this.layers.slice(0, i + 1));
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i]![1];
      const next = this.layers[i + 1]?.[1];
      if (next instanceof Activation && isFusing(layer) && layer.canFuse(next)) {
        // A layer then its activation: one kernel (the result and the gradients are the same).
        y = layer.forwardFused(y, next);
        i++;
      } else y = layer.forward(y);
    }
    return y;
  }
}

/**
 * What a MultiHead's trunk gives: one tensor every head reads (hard sharing), or a tensor per
 * head keyed by head name (soft sharing: cross-stitch, MMoE).
 */
export type TrunkOutput = Tensor | Record<string, Tensor>;

/**
 * A shared trunk and named task heads: forward(x) gives { [head]: head(trunk(x)) }, or
 * { [head]: head(trunk(x)[head]) } when the trunk gives each head its own representation. Layers
 * are named `trunk.*` and `<head>.*`, so `freeze('trunk')`, `replace('taskA', newHead)`, saving
 * and LoRA work as on Sequential.
 */
export class MultiHead<In = Tensor> extends Module<In, Record<string, Tensor>> {
  private readonly parts: [string, AnyModule][];

  constructor(trunk: Module<In, TrunkOutput>, heads: Record<string, Module> | [string, Module][]) {
    super();
    const list = Array.isArray(heads) ? [...heads] : Object.entries(heads);
    if (list.length === 0) throw new Error('MultiHead: no heads given');
    checkNames('MultiHead', list.map(([n]) => n), ['trunk']);
    this.parts = [['trunk', trunk], ...list];
    gather(this);
  }

  override children(): [string, AnyModule][] {
    return this.parts;
  }

  get trunk(): Module<In, TrunkOutput> {
    return this.parts[0]![1] as Module<In, TrunkOutput>;
  }

  /** Head names in order. */
  headNames(): string[] {
    return this.parts.slice(1).map(([n]) => n);
  }

  head(name: string): Module {
    const h = this.parts.slice(1).find(([n]) => n === name)?.[1];
    if (!h) throw new Error(`MultiHead: no head named "${name}" (heads: ${this.headNames().join(', ')})`);
    return h as Module;
  }

  /** The heads applied to trunk features computed elsewhere (cached features, a frozen trunk): one tensor for all, or one per head. */
  forwardHeads(features: TrunkOutput): Record<string, Tensor> {
    const names = this.headNames();
    if (!(features instanceof Tensor)) {
      const keys = Object.keys(features);
      if (keys.length !== names.length || !names.every((n) => Object.hasOwn(features, n))) {
        throw new Error(`MultiHead: the trunk gave representations for [${keys.join(', ')}]; the heads are [${names.join(', ')}]`);
      }
    }
    return Object.fromEntries(this.parts.slice(1).map(([name, h]) => [name, (h as Module).forward(features instanceof Tensor ? features : features[name]!)]));
  }

  forward(x: In): Record<string, Tensor> {
    return this.forwardHeads(this.trunk.forward(x));
  }
}
