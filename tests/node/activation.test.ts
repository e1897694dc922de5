// The one numbering of the unary ops: src/engine/ops/activation.ts reads it from the ACT_
// constants of src/shaders/lib/activation.wgsl (linked text, as the kernels get it).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { SHADER_ROOT } from '../../scripts/wgsl-import.mjs';
import { activationNumbers, fusable, FUSED_ACTIVATIONS, UNARY_OP_NAMES, UNARY_OPS } from '../../src/engine/ops/activation.js';

const file = readFileSync(join(SHADER_ROOT, 'lib/activation.wgsl'), 'utf8');

/** The constant's value, found by its own line in the file (not by the module's parser). */
function constant(name: string): number | undefined {
  const line = file.split('\n').find((l) => l.startsWith(`const ACT_${name.toUpperCase()}: u32 =`));
  return line === undefined ? undefined : parseInt(line.split('=')[1]!, 10);
}

/** The body of a WGSL function of the file, up to the closing brace at the start of a line. */
function body(fn: string): string {
  const start = file.indexOf(`fn ${fn}(`);
  expect(start, `fn ${fn} in lib/activation.wgsl`).toBeGreaterThanOrEqual(0);
  return file.slice(start, file.indexOf('\n}', start));
}

describe('the unary op table', () => {
  test('every op has the number of its ACT_ constant; all numbers differ, and none is the identity', () => {
    expect(Object.keys(UNARY_OPS).sort()).toEqual([...UNARY_OP_NAMES].sort());
    for (const op of UNARY_OP_NAMES) expect(UNARY_OPS[op], op).toBe(constant(op));
    const numbers = [...Object.values(UNARY_OPS), constant('none')];
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  test('every ACT_ constant of the file is a TS op or the identity, with a case for its value and (but clip_factor) its derivative', () => {
    const names = [...file.matchAll(/^const ACT_(\w+): u32/gm)].map((m) => m[1]!.toLowerCase());
    expect(names.sort()).toEqual([...UNARY_OP_NAMES, 'none'].sort());
    for (const op of UNARY_OP_NAMES) {
      expect(body('act_value'), `act_value case for ${op}`).toContain(`case ACT_${op.toUpperCase()}:`);
      if (op !== 'clip_factor') expect(body('act_derivative'), `act_derivative case for ${op}`).toContain(`case ACT_${op.toUpperCase()}:`);
    }
  });

  test('an op without a constant, or two constants with one number, fail loudly', () => {
    expect(activationNumbers('const ACT_RELU: u32 = 1u;\nconst ACT_TANH: u32 = 2u;', ['relu', 'tanh'])).toEqual({ relu: 1, tanh: 2 });
    expect(() => activationNumbers('const ACT_RELU: u32 = 1u;', ['relu', 'softplus'])).toThrow('unary op softplus: lib/activation.wgsl has no ACT_SOFTPLUS (it has ACT_RELU)');
    expect(() => activationNumbers('const ACT_RELU: u32 = 1u;\nconst ACT_TANH: u32 = 1u;', ['relu'])).toThrow('lib/activation.wgsl: ACT_RELU and ACT_TANH are both 1');
  });

  test('fusable: the ops whose derivative follows from the output; leaky_relu only with a positive slope', () => {
    expect([...FUSED_ACTIVATIONS]).toEqual(['relu', 'leaky_relu', 'sigmoid', 'tanh']);
    expect(UNARY_OP_NAMES.filter((op) => fusable(op, 0.01))).toEqual(['relu', 'leaky_relu', 'sigmoid', 'tanh']);
    expect(fusable('leaky_relu', 0)).toBe(false);
    expect(fusable('leaky_relu', -0.1)).toBe(false);
  });
});
