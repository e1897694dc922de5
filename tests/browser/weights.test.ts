// Weights to and from safetensors: parameters and buffers by name, read back by an independent
// parser here, loaded into a fresh model with names and shapes checked.
import { beforeAll, expect, test } from 'vitest';
import { BatchNorm, Dense, Engine, ReLU, saveWeights, loadWeights, Sequential } from '../../src/index.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

/** A minimal safetensors reader written from the format description, independent of src/. */
function readSafetensors(bytes: Uint8Array): Map<string, { shape: number[]; values: Float32Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    expect(info.dtype).toBe('F32');
    const [begin, end] = info.data_offsets;
    const values = new Float32Array((end - begin) / 4);
    for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(8 + headerLength + begin + 4 * i, true);
    out.set(name, { shape: info.shape, values });
  }
  return out;
}

function model(seed: number): Sequential {
  return new Sequential({
    fc1: new Dense(engine, 6, 5, { seed }),
    bn1: new BatchNorm(engine, 5),
    relu1: ReLU(),
    fc2: new Dense(engine, 5, 3, { seed: seed + 10 }),
  });
}

test('saveWeights writes every parameter and buffer by name; an independent reader gets the same values', async () => {
  const m = model(1);
  // One training-mode forward moves BatchNorm's running statistics away from their initial values.
  await engine.scope(() => m.forward(engine.randn([8, 6], { seed: 3 })).data());
  const bytes = await saveWeights(m, { metadata: { format: 'pt' } });
  const file = readSafetensors(bytes);
  const expected = [...m.parameters(), ...m.buffers()];
  expect([...file.keys()].sort()).toEqual(expected.map(([n]) => n).sort());
  expect(file.has('bn1.running_mean')).toBe(true);
  for (const [name, t] of expected) {
    expect(file.get(name)!.shape, name).toEqual([...t.shape]);
    expect(Array.from(file.get(name)!.values), name).toEqual(Array.from(await t.data()));
  }
  expect(Array.from(await m.buffers().get('bn1.running_mean')!.data()).some((v) => v !== 0)).toBe(true);

  // A fresh model with other initial weights gives the same outputs once loaded.
  const fresh = model(99);
  loadWeights(fresh, bytes);
  m.eval();
  fresh.eval();
  const x = engine.randn([4, 6], { seed: 5 });
  const [a, b] = await engine.scope(() => Promise.all([m.predict(x).data(), fresh.predict(x).data()]));
  expect(Array.from(b)).toEqual(Array.from(a));
});

test('saveWeights with `only` saves the named layers; loading checks names and shapes', async () => {
  const m = model(2);
  const head = readSafetensors(await saveWeights(m, { only: ['fc2'] }));
  expect([...head.keys()].sort()).toEqual(['fc2.bias', 'fc2.weight']);
  await expect(saveWeights(m, { only: ['nope'] })).rejects.toThrow(/no layer or parameter named "nope"/);

  const full = await saveWeights(m);
  const other = new Sequential({ fc1: new Dense(engine, 6, 5), bn1: new BatchNorm(engine, 5), relu1: ReLU(), fc2: new Dense(engine, 5, 4) });
  expect(() => loadWeights(other, full)).toThrow(/fc2.weight is \[3,5\] in the file but \[4,5\] in the model/);
  const renamed = new Sequential({ dense1: new Dense(engine, 6, 5) });
  expect(() => loadWeights(renamed, full)).toThrow(/the file has fc1\.(weight|bias), which the model does not have/);
  // Strict by default: a file that lacks some of the model's tensors is refused, unless strict is off.
  const headOnly = await saveWeights(m, { only: ['fc2'] });
  const target = model(3);
  expect(() => loadWeights(target, headOnly)).toThrow(/the file lacks fc1.weight/);
  loadWeights(target, headOnly, { strict: false });
  expect(Array.from(await target.parameters().get('fc2.weight')!.data())).toEqual(Array.from(await m.parameters().get('fc2.weight')!.data()));
});
