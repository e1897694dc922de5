// Recording the graph: each op's output remembers its inputs, one gradient function per input,
// and the other tensors its backward reads (micrograd style, no global tape). autograd.ts walks
// it backwards.
import { Parameter } from './parameters.js';
import type { GradientFn, Node, Tensor } from './tensor.js';

let recording = true;
let nextNodeId = 1;

/** Runs fn without recording the graph (inference, optimizer updates, backward itself). */
export function noGrad<T>(fn: () => T): T {
  const outer = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = outer;
  }
}

function tracked(t: Tensor): boolean {
  return t instanceof Parameter || t.requiresGrad || t.node !== null;
}

/** Whether record() will attach a node for these inputs: an op saves what its backward needs only then. */
export function willRecord(inputs: readonly Tensor[]): boolean {
  return recording && inputs.some(tracked);
}

/**
 * Attaches the op's node to its output when any input takes part in differentiation. `saved`
 * lists what the gradient functions read besides the inputs (the output, saved statistics).
 */
export function record(out: Tensor, op: string, inputs: Tensor[], grads: (GradientFn | null)[], saved: Tensor[] = []): Tensor {
  if (willRecord(inputs)) out.node = { id: nextNodeId++, op, inputs, grads, saved } satisfies Node;
  return out;
}
