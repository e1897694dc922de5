// Reverse-mode autodiff over the graph that ops record (micrograd style: each op stores its
// inputs and one gradient function per input; no global tape). Backward runs only where a
// gradient is wanted: a tensor "needs" a gradient if it is a trainable parameter (or a tensor
// asked for) or an op output with such a tensor among its inputs. Frozen parameters need none,
// so no weight-gradient kernel runs for them and nothing below the lowest trainable layer runs.
// backward() accumulates into the parameters' regions of their model's flat gradient buffer;
// where a parameter gets its gradient from one op, that op's kernel writes it there directly.
import { noGrad } from './graph.js';
import { add, mul } from './ops/elementwise.js';
import { addScaledInPlace } from './ops/flat.js';
import { Parameter } from './parameters.js';
import { shapeString, type Node, type Tensor } from './tensor.js';

/**
 * Gradients of a scalar `loss` with respect to `wrt` (or, when wrt is null, with respect to every
 * trainable parameter it depends on). Gradients of a tensor used by several ops are summed.
 * `seed` replaces d(loss)/d(loss) = 1 (for a non-scalar output).
 */
export function gradients(loss: Tensor, wrt: readonly Tensor[] | null, seed?: Tensor): Map<Tensor, Tensor> {
  return backpropagate(loss, wrt, seed, () => undefined);
}

/**
 * `destination(t)` may give a tensor that t's gradient is to be written into, when one op alone
 * produces it (the op's gradient function may write there instead of making a new tensor).
 */
function backpropagate(loss: Tensor, wrt: readonly Tensor[] | null, seed: Tensor | undefined, destination: (t: Tensor) => Tensor | undefined): Map<Tensor, Tensor> {
  if (loss.disposed) throw new Error(`backward: the loss ${loss.name} ${shapeString(loss.shape)} was disposed (its scope ended); run backward inside the scope that computed it`);
  const engine = loss.engine;
  if (!seed && loss.size !== 1) throw new Error(`backward: ${loss.name} has shape ${shapeString(loss.shape)}; pass a seed gradient for a non-scalar output`);
  if (seed && seed.size !== loss.size) throw new Error(`backward: seed ${shapeString(seed.shape)} does not match ${loss.name} ${shapeString(loss.shape)}`);
  const wanted = wrt ? new Set(wrt) : null;
  const freed = (t: Tensor, role: string, node: Node) =>
    new Error(
      `backward: the graph of ${loss.name} was freed: ${t.name} ${shapeString(t.shape)} (${role} of ${node.op}) was disposed. Run backward before the scope that made the forward pass ends (or keep() what it needs)`,
    );
  const memo = new Map<Tensor, boolean>();
  const needs = (t: Tensor): boolean => {
    let r = memo.get(t);
    if (r !== undefined) return r;
    r = wanted ? wanted.has(t) : t instanceof Parameter && !t.frozen;
    const node = t.node;
    if (node) {
      for (const input of node.inputs) {
        // A disposed tensor has lost its own node, so whether a gradient path runs through it is unknown.
        if (input.disposed && !(input instanceof Parameter)) throw freed(input, 'an input', node);
        if (needs(input)) r = true;
      }
    }
    memo.set(t, r);
    return r;
  };

  // Nodes on a path from the loss to a tensor that needs a gradient, newest first.
  const outputs = new Map<Node, Tensor>();
  const results: Tensor[] = [];
  const stack = [loss];
  while (stack.length) {
    const t = stack.pop()!;
    if (!needs(t)) continue;
    if (wanted ? wanted.has(t) : t instanceof Parameter) results.push(t);
    if (t.node && !outputs.has(t.node)) {
      outputs.set(t.node, t);
      stack.push(...t.node.inputs);
    }
  }
  // A plain tensor is not recorded, so a gradient for it could never be found: say so rather than
  // return nothing. (A parameter the loss does not use simply gets no entry.)
  for (const t of wrt ?? []) {
    if (!(t instanceof Parameter) && !t.requiresGrad && !t.node) {
      throw new Error(`gradients: ${t.name} ${shapeString(t.shape)} is not recorded by autograd; set requiresGrad = true on it before the forward pass`);
    }
  }
  const nodes = [...outputs.keys()].sort((a, b) => b.id - a.id);
  // Everything the backward will read must still exist: a scope that ended frees the graph.
  const uses = new Map<Tensor, number>();
  for (const node of nodes) {
    for (const t of [outputs.get(node)!, ...node.inputs, ...node.saved]) {
      if (t.disposed) throw freed(t, t === outputs.get(node) ? 'the output' : node.inputs.includes(t) ? 'an input' : 'a saved tensor', node);
    }
    node.inputs.forEach((input, i) => {
      if (node.grads[i] && needs(input)) uses.set(input, (uses.get(input) ?? 0) + 1);
    });
  }
  const keep = new Set(results);

  const grads = new Map<Tensor, Tensor>();
  noGrad(() => {
    grads.set(loss, seed ? engine.view(seed, loss.shape) : engine.full(loss.shape, 1, `d(${loss.name})`));
    for (const node of nodes) {
      const out = outputs.get(node)!;
      const dy = grads.get(out);
      if (!dy) continue;
      node.inputs.forEach((input, i) => {
        const fn = node.grads[i];
        if (!fn || !needs(input)) return;
        const into = uses.get(input) === 1 ? destination(input) : undefined;
        let g = engine.withLabel(`${node.op}.backward d(${input.name})`, () => fn(dy, into));
        if (g.size !== input.size) {
          throw new Error(`backward of ${node.op}: gradient ${shapeString(g.shape)} for input ${input.name} ${shapeString(input.shape)}`);
        }
        // Every map entry is its own tensor (a view where a gradient function passed dy through),
        // so disposing one entry never frees another's storage.
        if (g !== into && (g === dy || [...grads.values()].includes(g) || g.shape.join() !== input.shape.join())) g = engine.view(g, input.shape, `d(${input.name})`);
        const previous = grads.get(input);
        if (previous) {
          const sum = engine.withLabel(`accumulate d(${input.name})`, () => add(previous, g));
          previous.dispose();
          g.dispose();
          g = sum;
        }
        grads.set(input, g);
      });
      if (!keep.has(out)) {
        grads.delete(out);
        dy.dispose();
      }
    }
  });
  const result = new Map<Tensor, Tensor>();
  for (const t of results) {
    const g = grads.get(t);
    if (g) result.set(t, g);
  }
  return result;
}

/**
 * Backpropagates a scalar loss into the gradient of every trainable parameter it depends on (its
 * region of its model's flat gradient buffer, `param.grad`), adding to gradients already there.
 * Masked parameters get their gradient multiplied by the mask, so masked elements carry exactly
 * zero gradient.
 */
export function backward(loss: Tensor): void {
  const direct = (t: Tensor) => (t instanceof Parameter && !t.hasGradient && !t.mask ? t.gradView() : undefined);
  const grads = backpropagate(loss, null, undefined, direct);
  noGrad(() => {
    for (const [t, g] of grads) accumulateGradient(t as Parameter, g);
  });
}

/**
 * Adds g to p's gradient (its region of the model's flat gradient buffer), multiplied by p's
 * mask when it has one, and disposes g; g may already be that region (written there directly).
 * What backward does with each gradient, for code that computes gradients itself (per-task
 * gradients combined by a multi-task method).
 */
export function accumulateGradient(p: Parameter, g: Tensor): void {
  const region = p.gradView();
  if (g === region) {
    p.markGradient();
    return;
  }
  const engine = p.engine;
  noGrad(() => {
    let h = g;
    if (p.mask) {
      h = engine.withLabel(`mask d(${p.name})`, () => mul(g, p.mask!));
      g.dispose();
    }
    if (p.hasGradient) engine.withLabel(`accumulate d(${p.name})`, () => addScaledInPlace(region, h));
    else engine.copy(h, region);
    h.dispose();
  });
  p.markGradient();
}
