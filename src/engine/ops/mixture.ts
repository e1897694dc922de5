// The gated combination of a mixture of experts (MMoE's per-task mixing): experts [E, B, F] (each
// expert's output for the batch) and gates [B, E] (per row, a weight per expert) give
// out[b, f] = sum_e gates[b, e] experts[e, b, f]. Forward mixture.wgsl; backward
// mixture_backward.wgsl, once per input: d(experts) = gates[b, e] dy[b, f],
// d(gates)[b, e] = sum_f experts[e, b, f] dy[b, f].
import { record } from '../graph.js';
import { shapeString, type Tensor } from '../tensor.js';
import { alive, output } from './check.js';

/** sum_e gates[b, e] experts[e, b, f] as [B, F], for experts [E, B, F] and gates [B, E]. Differentiable in both. */
export function mixture(experts: Tensor, gates: Tensor): Tensor {
  const op = 'mixture';
  alive(op, experts, gates);
  if (experts.rank !== 3 || gates.rank !== 2 || gates.shape[0] !== experts.shape[1] || gates.shape[1] !== experts.shape[0]) {
    throw new Error(`${op}: experts ${experts.name} ${shapeString(experts.shape)} and gates ${gates.name} ${shapeString(gates.shape)}; expected experts [E, B, F] and gates [B, E]`);
  }
  const [E, B, F] = experts.shape as [number, number, number];
  const engine = experts.engine;
  const uniforms = { experts: E, rows: B, features: F };
  const out = engine.empty([B, F], op);
  engine.dispatch('mixture', { bindings: { experts, gates, out }, uniforms, threads: B * F, flops: 2 * E * B * F });
  const gradient = (which: 'experts' | 'gates', dy: Tensor, into?: Tensor): Tensor => {
    const input = which === 'gates' ? gates : experts;
    const dx = output(op, engine, input.shape, `d(${input.name})`, into);
    const unused = engine.placeholder();
    engine.dispatch('mixture_backward', {
      bindings: { experts: which === 'gates' ? experts : unused, gates: which === 'gates' ? unused : gates, dy, dx },
      uniforms,
      constants: { GATES: which === 'gates' },
      threads: dx.size,
      flops: which === 'gates' ? 2 * E * B * F : E * B * F,
    });
    return dx;
  };
  return record(out, op, [experts, gates], [(dy, into) => gradient('experts', dy, into), (dy, into) => gradient('gates', dy, into)]);
}
