// Reverse-mode autodiff over the graph that ops record (micrograd style: each op stores its
// inputs and one gradient function per input; no global tape). Backward runs only where a
// gradient is wanted: a tensor "needs" a gradient if it is a trainable parameter (or a tensor
// asked for) or an op output with such a tensor among its inputs. Frozen parameters need none,
// so no weight-gradient kernel runs for them and nothing below the lowest trainable layer runs.
import { noGrad } from './graph.js';
import { add, mul } from './ops/elementwise.js';
import { Parameter, shapeString, type Node, type Tensor } from './tensor.js';

/**
 * Gradients of a scalar `loss` with respect to `wrt` (or, when wrt is null, with respect to every
 * trainable parameter it depends on). Gradients of a tensor used by several ops are summed.
 * `seed` replaces d(loss)/d(loss) = 1 (for a non-scalar output).
 */
export function gradients(loss: Tensor, wrt: readonly Tensor[] | null, seed?: Tensor): Map<Tensor, Tensor> {
  loss.assertAlive('backward');
  const engine = loss.engine;
  if (!seed && loss.size !== 1) throw new Error(`backward: ${loss.name} has shape ${shapeString(loss.shape)}; pass a seed gradient for a non-scalar output`);
  if (seed && seed.size !== loss.size) throw new Error(`backward: seed ${shapeString(seed.shape)} does not match ${loss.name} ${shapeString(loss.shape)}`);
  const wanted = wrt ? new Set(wrt) : null;
  const memo = new Map<Tensor, boolean>();
  const needs = (t: Tensor): boolean => {
    let r = memo.get(t);
    if (r !== undefined) return r;
    r = wanted ? wanted.has(t) : t instanceof Parameter && !t.frozen;
    if (t.node) for (const input of t.node.inputs) if (needs(input)) r = true;
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
        let g = engine.withLabel(`${node.op}.backward d(${input.name})`, () => fn(dy));
        if (g.size !== input.size) {
          throw new Error(`backward of ${node.op}: gradient ${shapeString(g.shape)} for input ${input.name} ${shapeString(input.shape)}`);
        }
        // Every map entry is its own tensor (a view where a gradient function passed dy through),
        // so disposing one entry never frees another's storage.
        if (g === dy || [...grads.values()].includes(g) || g.shape.join() !== input.shape.join()) g = engine.view(g, input.shape, `d(${input.name})`);
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
  const out = new Map<Tensor, Tensor>();
  for (const t of results) {
    const g = grads.get(t);
    if (g) out.set(t, g);
  }
  return out;
}

/**
 * Backpropagates a scalar loss into `.grad` of every trainable parameter it depends on,
 * adding to gradients already there. Masked parameters get their gradient multiplied by the
 * mask, so masked elements carry exactly zero gradient.
 */
export function backward(loss: Tensor): void {
  const grads = gradients(loss, null);
  const engine = loss.engine;
  noGrad(() => {
    for (const [t, g0] of grads) {
      const p = t as Parameter;
      let g = g0;
      if (p.mask) {
        g = engine.withLabel(`mask d(${p.name})`, () => mul(g0, p.mask!));
        g0.dispose();
      }
      if (p.grad) {
        const sum = engine.withLabel(`accumulate d(${p.name})`, () => add(p.grad!, g));
        p.grad.dispose();
        g.dispose();
        g = sum;
      }
      p.grad = engine.keep(g);
    }
  });
}
