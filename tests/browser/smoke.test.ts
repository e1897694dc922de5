import { expect, test } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import { matmul } from '../../src/engine/ops/index.js';

test('smoke', async () => {
  const e = await Engine.create();
  const a = e.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = e.tensor([1, 0, 0, 1, 1, 1], [3, 2]);
  const c = matmul(a, b);
  expect(Array.from(await c.data())).toEqual([4, 5, 10, 11]);
  console.log(e.adapterName);
});
