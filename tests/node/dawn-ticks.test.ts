// The engine's waits on dawn.node route the binding's setImmediate tick chain through setTimeout
// (src/engine/dawn-ticks.ts): only while a wait is pending, restored after the last one (also when
// it rejects), with callbacks and their arguments kept and clearImmediate clearing either kind.
import { expect, test } from 'vitest';
import { waitWithTickInterval } from '../../src/engine/dawn-ticks.js';

const deferred = () => {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

test('setImmediate is replaced only while waits are pending, and restored after the last', async () => {
  const original = globalThis.setImmediate;
  const a = deferred();
  const b = deferred();
  const waitA = waitWithTickInterval(a.promise, 2);
  expect(globalThis.setImmediate).not.toBe(original);
  const waitB = waitWithTickInterval(b.promise, 2);
  a.resolve();
  await waitA;
  expect(globalThis.setImmediate).not.toBe(original); // b still waits
  b.resolve();
  await waitB;
  expect(globalThis.setImmediate).toBe(original);
});

test('a rejected wait restores setImmediate and passes the rejection on', async () => {
  const original = globalThis.setImmediate;
  const d = deferred();
  const wait = waitWithTickInterval(d.promise, 1);
  d.reject(new Error('device lost'));
  await expect(wait).rejects.toThrow('device lost');
  expect(globalThis.setImmediate).toBe(original);
});

test('during a wait, setImmediate callbacks run with their arguments after a timer, and clearImmediate cancels either kind', async () => {
  const d = deferred();
  const wait = waitWithTickInterval(d.promise, 1);
  const seen: string[] = [];
  const handle = setImmediate((x: string) => seen.push(x), 'throttled');
  expect(typeof (handle as unknown as { refresh?: unknown }).refresh).toBe('function'); // a Timeout
  const cancelled = setImmediate(() => seen.push('cancelled'));
  clearImmediate(cancelled);
  await new Promise((r) => setTimeout(r, 20));
  expect(seen).toEqual(['throttled']);
  d.resolve();
  await wait;
  // Restored: a real Immediate, which clearImmediate still cancels.
  const real = setImmediate(() => seen.push('real cancelled'));
  clearImmediate(real);
  await new Promise((r) => setTimeout(r, 5));
  expect(seen).toEqual(['throttled']);
});

test('an interval of 0 leaves setImmediate alone', async () => {
  const original = globalThis.setImmediate;
  const d = deferred();
  const wait = waitWithTickInterval(d.promise, 0);
  expect(globalThis.setImmediate).toBe(original);
  d.resolve();
  await wait;
});

test('Engine.create refuses a tick interval that is not a non-negative number, before asking for a device', async () => {
  const { Engine } = await import('../../src/index.js');
  await expect(Engine.create({ dawnTickIntervalMs: -1 })).rejects.toThrow(/dawnTickIntervalMs -1 must be a non-negative number of milliseconds/);
  await expect(Engine.create({ dawnTickIntervalMs: Number.NaN })).rejects.toThrow(/dawnTickIntervalMs NaN/);
});
