// The unary ops' numbers, read from the `const ACT_<NAME>: u32 = <n>u;` lines of
// src/shaders/lib/activation.wgsl, the one file that defines each op's value and derivative for
// unary.wgsl, unary_backward.wgsl and the matmul and conv2d epilogues. Which ops an epilogue can
// apply is decided here: those whose derivative follows from their output.
import source from '../../shaders/lib/activation.wgsl';

export const UNARY_OP_NAMES = ['relu', 'leaky_relu', 'gelu', 'sigmoid', 'tanh', 'square', 'scale', 'exp', 'log', 'clip_factor'] as const;

export type UnaryOp = (typeof UNARY_OP_NAMES)[number];

/**
 * The number of each named op in `wgsl` (the name upper-cased after ACT_). Throws for a name
 * without a constant and for two constants with one number.
 */
export function activationNumbers<Name extends string>(wgsl: string, names: readonly Name[]): Record<Name, number> {
  const constants = new Map<string, number>();
  for (const [, name, value] of wgsl.matchAll(/^const ACT_(\w+): u32 = (\d+)u;/gm)) {
    const same = [...constants].find(([, v]) => v === Number(value));
    if (same) throw new Error(`lib/activation.wgsl: ACT_${same[0]} and ACT_${name} are both ${value}`);
    constants.set(name!, Number(value));
  }
  const numbers = {} as Record<Name, number>;
  for (const name of names) {
    const n = constants.get(name.toUpperCase());
    if (n === undefined) {
      throw new Error(`unary op ${name}: lib/activation.wgsl has no ACT_${name.toUpperCase()} (it has ${[...constants.keys()].map((k) => `ACT_${k}`).join(', ')})`);
    }
    numbers[name] = n;
  }
  return numbers;
}

/** Each unary op's number: the OP override of unary.wgsl and unary_backward.wgsl, the ACT override of the epilogues. */
export const UNARY_OPS: Readonly<Record<UnaryOp, number>> = activationNumbers(source, UNARY_OP_NAMES);

/**
 * The ops that matmul's and conv2d's epilogues can apply: the backward gets their derivative from
 * the output alone (leaky_relu only with a positive slope, so that y > 0 exactly where x > 0).
 */
export const FUSED_ACTIVATIONS = ['relu', 'leaky_relu', 'sigmoid', 'tanh'] as const satisfies readonly UnaryOp[];

export type FusedActivation = (typeof FUSED_ACTIVATIONS)[number];

export function fusable(op: UnaryOp, alpha: number): op is FusedActivation {
  return (FUSED_ACTIVATIONS as readonly UnaryOp[]).includes(op) && (op !== 'leaky_relu' || alpha > 0);
}

/** Throws, naming the op, unless `activation` (if any) can be fused with this slope. */
export function checkFused(op: string, activation: FusedActivation | null, slope: number): void {
  if (!activation || fusable(activation, slope)) return;
  if (activation === 'leaky_relu') throw new Error(`${op}: fused leaky_relu needs a positive slope, got ${slope}`);
  throw new Error(`${op}: ${activation} cannot be fused (its derivative does not follow from its output); fusable: ${FUSED_ACTIVATIONS.join(', ')}`);
}
