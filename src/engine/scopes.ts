// Scopes: every tensor made while a scope is open is disposed when it ends, except kept tensors
// and those it returns (which pass to the enclosing scope). Each engine context has its own
// stack. A stack cannot tell apart two async tasks that interleave their scopes (there is no
// async context to attribute a tensor to the task that made it), so a scope that ends while a
// scope opened after it is still open is refused with an error saying so; concurrent tasks each
// take their own context (`engine.context()`), whose tensors no other context's scope touches.
import { Tensor } from './tensor.js';

export class ScopeStack {
  private readonly open: Set<Tensor>[] = [];

  /** Puts a new tensor in the innermost open scope. */
  track<T extends Tensor>(t: T): T {
    this.open[this.open.length - 1]?.add(t);
    return t;
  }

  /** Marks a tensor as kept: no scope will dispose it. */
  keep<T extends Tensor>(t: T): T {
    t.kept = true;
    for (const s of this.open) s.delete(t);
    return t;
  }

  get depth(): number {
    return this.open.length;
  }

  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    const made = new Set<Tensor>();
    this.open.push(made);
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      // Everything fn made (and did not keep) is freed when it throws too.
      this.close(made, new Set());
      throw e;
    }
    const returned = new Set<Tensor>();
    collectTensors(result, returned);
    if (this.close(made, returned)) {
      throw new Error(
        'engine.scope: this scope ended while a scope opened after it, and not inside it, was still open: two async tasks (Promise.all over training loops, a callback running during training) used scopes of one engine at once, so tensors of one may have gone to the scope of the other. Give each concurrent task its own context (const ctx = engine.context(); await ctx.scope(...), and make its tensors with ctx), or run the tasks one after another.',
      );
    }
    return result;
  }

  /** Ends a scope: disposes what it made but `returned`, which passes to the enclosing scope. True when it was not the innermost. */
  private close(made: Set<Tensor>, returned: Set<Tensor>): boolean {
    const i = this.open.lastIndexOf(made);
    const interleaved = i !== this.open.length - 1;
    this.open.splice(i, 1);
    const parent = this.open[i - 1];
    for (const t of made) {
      if (t.kept) continue;
      if (returned.has(t)) parent?.add(t);
      else t.dispose();
    }
    return interleaved;
  }
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (depth > 4 || value == null || typeof value !== 'object') return;
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, into, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
}
