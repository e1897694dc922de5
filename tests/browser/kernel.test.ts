// The kernel layer: bindings and uniforms come from reflecting the WGSL, errors name the kernel.
import { beforeAll, expect, test } from 'vitest';
import { Engine, Kernel } from '../../src/index.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create();
});

const SCALE = `
override WG: u32 = 64;
struct Params { n: u32, factor: f32, shift: i32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= p.n) { return; }
  dst[gid.x] = src[gid.x] * p.factor + f32(p.shift);
}`;

test('a caller-defined kernel binds by name and packs uniforms by reflected offsets', async () => {
  const k = new Kernel('scale_shift', SCALE);
  expect(k.bindings.map((b) => b.name)).toEqual(['src', 'dst', 'p']);
  expect(k.uniform?.members.map((m) => [m.name, m.offset, m.type])).toEqual([
    ['n', 0, 'u32'],
    ['factor', 4, 'f32'],
    ['shift', 8, 'i32'],
  ]);
  const src = engine.tensor([1, 2, 3, 4, 5], [5]);
  const dst = engine.zeros([5]);
  engine.dispatch(k, { bindings: { src, dst }, uniforms: { n: 5, factor: 2, shift: -3 }, threads: 5, constants: { WG: 32 } });
  expect(Array.from(await dst.data())).toEqual([-1, 1, 3, 5, 7]);
});

test('binding, uniform and constant mistakes name the kernel and what is wrong', () => {
  const k = new Kernel('scale_shift', SCALE);
  const t = engine.zeros([4]);
  expect(() => engine.dispatch(k, { bindings: { src: t }, uniforms: { n: 4, factor: 1, shift: 0 }, threads: 4 })).toThrow(/scale_shift: binding dst was not given/);
  expect(() => engine.dispatch(k, { bindings: { src: t, dst: engine.zeros([4]), extra: t }, uniforms: { n: 4, factor: 1, shift: 0 }, threads: 4 })).toThrow(
    /scale_shift: the shader has no binding named extra/,
  );
  expect(() => engine.dispatch(k, { bindings: { src: t, dst: engine.zeros([4]) }, uniforms: { n: 4, factor: 1 }, threads: 4 })).toThrow(/scale_shift: uniform p.shift was not given/);
  expect(() => engine.dispatch(k, { bindings: { src: t, dst: engine.zeros([4]) }, uniforms: { n: -1, factor: 1, shift: 0 }, threads: 4 })).toThrow(/scale_shift: uniform n=-1 is not a u32/);
  expect(() => engine.dispatch(k, { bindings: { src: t, dst: engine.zeros([4]) }, uniforms: { n: 4, factor: 1, shift: 0 }, threads: 4, constants: { NOPE: 1 } })).toThrow(
    /scale_shift: no override constant named NOPE/,
  );
  expect(() => engine.dispatch(k, { bindings: { src: t, dst: t }, uniforms: { n: 4, factor: 1, shift: 0 }, threads: 4 })).toThrow(/bound both for reading and for writing/);
});

test('a shader that fails to compile throws with the kernel name, the line and its WGSL', async () => {
  const broken = new Kernel(
    'broken_kernel',
    `@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
  let wrong: f32 = 1u;
  out[0] = wrong;
}`,
  );
  engine.dispatch(broken, { bindings: { out: engine.zeros([1]) }, workgroups: [1] });
  const error = await engine.flush().then(
    () => null,
    (e: Error) => e,
  );
  expect(error).toBeInstanceOf(Error);
  expect(error!.message).toMatch(/kernel broken_kernel: WGSL failed to compile/);
  expect(error!.message).toMatch(/line 4/);
  expect(error!.message).toContain('let wrong: f32 = 1u;');
  // The engine stays usable after a failed flush.
  const t = engine.tensor([1, 2], [2]);
  expect(Array.from(await t.data())).toEqual([1, 2]);
});

test('GPU objects carry labels naming their kernel or tensor', () => {
  const t = engine.zeros([3], 'my_tensor');
  expect(t.storage.buffer.label).toBe('my_tensor');
});
