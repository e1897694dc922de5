// Convolution and pooling against the float64 CPU references in tests/reference.ts: GPU forward
// against the reference, GPU backward (input, weight, bias) against the reference gradient of
// loss = sum(op(x) * w) with a fixed random weighting w, and the reference gradient against
// central finite differences. Then max-pool ties, a frozen conv weight (no weight-gradient
// kernel), error messages and a small CNN that has to learn Fashion-MNIST.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backward, gradients } from '../../src/engine/autograd.js';
import { Engine } from '../../src/engine/engine.js';
import { noGrad } from '../../src/engine/graph.js';
import * as ops from '../../src/engine/ops/index.js';
import type { Tensor } from '../../src/engine/tensor.js';
import {
  Adam,
  Conv2d,
  Dense,
  evaluate,
  fit,
  Flatten,
  GELU,
  LeakyReLU,
  loadFashionMnist,
  MaxPool2d,
  ReLU,
  Reshape,
  Sequential,
  Sigmoid,
  Tanh,
  type ClassificationData,
} from '../../src/index.js';
import { ACCUMULATED, expectClose, FD, type Tol } from '../close.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});


const abs = (x: Float64Array) => x.map(Math.abs);

interface Case {
  inputs: { data: Float64Array; shape: number[] }[];
  gpu: (t: Tensor[]) => Tensor;
  forward: (x: Float64Array[]) => ref.Arr;
  grad: (x: Float64Array[], dy: Float64Array) => Float64Array[];
  fdCount?: number;
  /** Default ACCUMULATED. */
  tol?: Tol;
}

/** Forward, backward of every input and finite differences of the reference gradient. */
async function check(name: string, c: Case, seed: number): Promise<void> {
  await engine.scope(async () => {
    const ts = c.inputs.map((inp, i) => engine.parameter(Float32Array.from(inp.data), inp.shape, `${name}.x${i}`));
    try {
      const xs = c.inputs.map((inp) => inp.data);
      const want = c.forward(xs);
      const y = c.gpu(ts);
      expect([...y.shape], `${name}: output shape`).toEqual(want.shape);
      expectClose(await y.data(), want.data, c.tol ?? ACCUMULATED, `${name}: forward`, c.forward(xs.map(abs)).data);

      const w = ref.normal(want.shape, seed * 7919 + 17);
      const loss = ops.sum(ops.mul(y, engine.tensor(Float32Array.from(w), want.shape, `${name}.w`)));
      const grads = gradients(loss, ts);
      const refGrads = c.grad(xs, w);
      const scales = c.grad(xs.map(abs), abs(w));
      for (let i = 0; i < ts.length; i++) {
        const g = grads.get(ts[i]!);
        expect(g, `${name}: gradient of input ${i}`).toBeDefined();
        expect([...g!.shape], `${name}: gradient shape of input ${i}`).toEqual(c.inputs[i]!.shape);
        expectClose(await g!.data(), refGrads[i]!, c.tol ?? ACCUMULATED, `${name}: backward d(x${i})`, scales[i]);
        const x = xs[i]!;
        const idx = ref.sampleIndices(x.length, c.fdCount ?? 10, seed + i);
        const fd = ref.finiteDifferences((xi) => ref.dot(c.forward(xs.map((v, k) => (k === i ? xi : v))).data, w), x, idx);
        expectClose(fd, idx.map((j) => refGrads[i]![j]!), FD, `${name}: reference d(x${i}) against finite differences`);
      }
    } finally {
      for (const t of ts) t.dispose();
    }
  });
}

// ---------------------------------------------------------------- conv2d

describe('conv2d', () => {
  // K = C*k*k aligned (multiple of 4: the vec4 weight path) or not; OC multiple of 4 or not;
  // strides 1 and 2; paddings 0, 1, 2; kernels 1, 3, 5; batch 1 and 3; odd image sizes; enough
  // positions for several workgroups and a split weight-gradient reduction.
  // Per-axis strides and paddings; OH*OW a multiple of 4 or not (the weight gradient's vec4 path
  // or not); and chunkBytes small enough that the backward takes the batch in chunks of 1 or 2
  // images (col2im's columns [K, OH*OW] per image, or the weight gradient's [OC, K] shares).
  const cases: (ref.ConvGeometry & { bias: boolean; chunkBytes?: number })[] = [
    { N: 1, C: 3, H: 7, W: 9, OC: 5, KH: 3, KW: 3, stride: 1, padding: 1, bias: true },
    { N: 3, C: 4, H: 7, W: 9, OC: 8, KH: 3, KW: 3, stride: 2, padding: 1, bias: true },
    { N: 3, C: 4, H: 8, W: 7, OC: 4, KH: 1, KW: 1, stride: 1, padding: 0, bias: false },
    { N: 3, C: 2, H: 9, W: 7, OC: 6, KH: 5, KW: 5, stride: 1, padding: 2, bias: true },
    { N: 1, C: 8, H: 6, W: 5, OC: 12, KH: 5, KW: 5, stride: 2, padding: 2, bias: true },
    { N: 3, C: 1, H: 7, W: 9, OC: 3, KH: 3, KW: 3, stride: 2, padding: 0, bias: false },
    { N: 1, C: 4, H: 7, W: 9, OC: 7, KH: 5, KW: 5, stride: 1, padding: 0, bias: true },
    { N: 3, C: 3, H: 16, W: 15, OC: 5, KH: 3, KW: 3, stride: 1, padding: 1, bias: true },
    { N: 3, C: 5, H: 7, W: 9, OC: 4, KH: 1, KW: 1, stride: 2, padding: 1, bias: true },
    { N: 3, C: 3, H: 7, W: 5, OC: 5, KH: 3, KW: 3, stride: 2, padding: [1, 2], bias: true },
    { N: 3, C: 3, H: 7, W: 5, OC: 5, KH: 5, KW: 3, stride: [1, 2], padding: [2, 1], bias: false },
    { N: 3, C: 3, H: 7, W: 5, OC: 5, KH: 1, KW: 1, stride: 1, padding: [0, 2], bias: true },
    { N: 3, C: 4, H: 8, W: 8, OC: 8, KH: 3, KW: 3, stride: 1, padding: 1, bias: true },
    { N: 3, C: 3, H: 7, W: 5, OC: 5, KH: 3, KW: 3, stride: 1, padding: [1, 2], bias: true, chunkBytes: 33 * 49 * 4 },
    { N: 3, C: 4, H: 8, W: 8, OC: 6, KH: 5, KW: 5, stride: 1, padding: 2, bias: false, chunkBytes: 2 * 100 * 64 * 4 },
    // 8 or more channels at stride 1: the input gradient as a convolution of dz with the flipped
    // kernel (OC*KH*KW = 45 padded to 48; paddings at their largest, KH-1 and KW-1, so dz needs
    // none), the weight gradient's shares in chunks of 1 (OH*OW = 63, off the vec4 path) and 2
    // images, and padding past the kernel, where the input gradient is col2im's again.
    { N: 3, C: 8, H: 7, W: 9, OC: 5, KH: 3, KW: 3, stride: 1, padding: 1, bias: true, chunkBytes: 5 * 72 * 4 },
    { N: 2, C: 9, H: 6, W: 5, OC: 4, KH: 5, KW: 3, stride: 1, padding: [4, 2], bias: false },
    { N: 3, C: 8, H: 6, W: 6, OC: 16, KH: 3, KW: 3, stride: 1, padding: 1, bias: true, chunkBytes: 2 * 16 * 72 * 4 },
    { N: 2, C: 8, H: 5, W: 6, OC: 6, KH: 3, KW: 3, stride: 1, padding: [3, 0], bias: true },
    // More than one workgroup down and across every product (64 x 64 tiles where M > 32).
    { N: 2, C: 9, H: 10, W: 11, OC: 70, KH: 3, KW: 3, stride: 1, padding: 1, bias: true },
  ];
  cases.forEach((g, n) => {
    const name = `x [${g.N},${g.C},${g.H},${g.W}] w [${g.OC},${g.C},${g.KH},${g.KW}] stride ${g.stride} padding ${g.padding}${g.bias ? ' + bias' : ''}${g.chunkBytes ? ` chunkBytes ${g.chunkBytes}` : ''}`;
    test(name, async () => {
      const xShape = [g.N, g.C, g.H, g.W];
      const wShape = [g.OC, g.C, g.KH, g.KW];
      const inputs = [
        { data: ref.normal(xShape, 100 + n), shape: xShape },
        { data: ref.normal(wShape, 200 + n, 0.5), shape: wShape },
        ...(g.bias ? [{ data: ref.normal([g.OC], 300 + n), shape: [g.OC] }] : []),
      ];
      await check(
        `conv2d ${name}`,
        {
          inputs,
          gpu: ([x, w, b]) => ops.conv2d(x!, w!, b ?? null, { stride: g.stride, padding: g.padding, chunkBytes: g.chunkBytes }),
          forward: ([x, w, b]) => ref.conv2d(x!, w!, b ?? null, g),
          grad: ([x, w], dy) => {
            const [dx, dw, db] = ref.conv2dGrad(x!, w!, g, dy);
            return g.bias ? [dx, dw, db] : [dx, dw];
          },
        },
        400 + n,
      );
    });
  });

  // Fused epilogue activations (conv2d(..., { activation })): forward act(conv + b), backward
  // through act' taken from the output, against the reference's act' from the pre-activation.
  // sigmoid and tanh add a transcendental's few ulp to sums of products (as linear's tests).
  const TRANSCENDENTAL: Tol = { atol: 2e-5, rtol: 1e-4 };
  const fused: [ref.UnaryName & ops.FusedActivation, number, Tol][] = [
    ['relu', 0, ACCUMULATED],
    ['leaky_relu', 0.2, ACCUMULATED],
    ['sigmoid', 0, TRANSCENDENTAL],
    ['tanh', 0, TRANSCENDENTAL],
  ];
  fused.forEach(([activation, slope, tol], a) =>
    [cases[0]!, cases[4]!].forEach((g, n) => {
      const name = `fused ${activation}: x [${g.N},${g.C},${g.H},${g.W}] w [${g.OC},${g.C},${g.KH},${g.KW}] stride ${g.stride} padding ${g.padding}`;
      test(name, async () => {
        const xShape = [g.N, g.C, g.H, g.W];
        const wShape = [g.OC, g.C, g.KH, g.KW];
        const alpha = Math.fround(slope);
        await check(
          `conv2d ${name}`,
          {
            inputs: [
              { data: ref.normal(xShape, 500 + n), shape: xShape },
              { data: ref.normal(wShape, 600 + n, 0.5), shape: wShape },
              { data: ref.normal([g.OC], 700 + n), shape: [g.OC] },
            ],
            gpu: ([x, w, b]) => ops.conv2d(x!, w!, b!, { stride: g.stride, padding: g.padding, activation, slope }),
            forward: ([x, w, b]) => {
              const z = ref.conv2d(x!, w!, b!, g);
              return { data: ref.unary(activation, z.data, alpha), shape: z.shape };
            },
            grad: ([x, w, b], dy) => ref.conv2dGrad(x!, w!, g, ref.unaryGrad(activation, ref.conv2d(x!, w!, b!, g).data, dy, alpha)),
            tol,
          },
          800 + 10 * a + n,
        );
      });
    }),
  );

  test('fused activations: only those whose derivative follows from the output', async () => {
    await engine.scope(() => {
      const x = engine.zeros([1, 2, 4, 4], 'images');
      const w = engine.zeros([3, 2, 3, 3], 'w');
      expect(() => ops.conv2d(x, w, null, { activation: 'leaky_relu', slope: 0 })).toThrow(/conv2d: fused leaky_relu needs a positive slope, got 0/);
      expect(() => ops.conv2d(x, w, null, { activation: 'gelu' as ops.FusedActivation })).toThrow(/conv2d: gelu cannot be fused .*fusable: relu, leaky_relu, sigmoid, tanh/);
      const conv = new Conv2d(engine, 2, 3, 3, { seed: 1 });
      try {
        expect([ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh()].map((act) => conv.canFuse(act))).toEqual([true, true, true, true]);
        expect([LeakyReLU(-0.1), GELU()].map((act) => conv.canFuse(act))).toEqual([false, false]);
        // Sequential runs a conv and a fusable activation as one conv2d: the activation in the
        // product's epilogue (after the weight's rows, 18 long, are copied 20 apart for vec4 loads).
        const model = new Sequential({ conv, act: Sigmoid() });
        const { dispatches } = engine.traceDispatches(() => model.forward(x));
        expect(dispatches.map((d) => d.kernel)).toEqual(['copy_block', 'conv2d']);
      } finally {
        conv.dispose();
      }
    });
  });

  test('rectangular kernel, per-axis stride and padding', async () => {
    // The reference takes one stride and padding, so compare against an equivalent: a 3x1 kernel
    // with padding [1, 0] and stride [2, 1] equals the general formula evaluated directly.
    await engine.scope(async () => {
      const x = ref.normal([1, 2, 5, 4], 7);
      const w = ref.normal([3, 2, 3, 1], 8);
      const y = ops.conv2d(engine.tensor(Float32Array.from(x), [1, 2, 5, 4]), engine.tensor(Float32Array.from(w), [3, 2, 3, 1]), null, { stride: [2, 1], padding: [1, 0] });
      expect([...y.shape]).toEqual([1, 3, 3, 4]);
      const got = await y.data();
      const want: number[] = [];
      for (let oc = 0; oc < 3; oc++)
        for (let oh = 0; oh < 3; oh++)
          for (let ow = 0; ow < 4; ow++) {
            let s = 0;
            for (let ic = 0; ic < 2; ic++)
              for (let kh = 0; kh < 3; kh++) {
                const ih = oh * 2 - 1 + kh;
                if (ih >= 0 && ih < 5) s += w[(oc * 2 + ic) * 3 + kh]! * x[(ic * 5 + ih) * 4 + ow]!;
              }
            want.push(s);
          }
      expectClose(got, want, { atol: 1e-5, rtol: 1e-5 }, 'per-axis conv2d');
    });
  });

  test('a frozen conv weight gets no weight-gradient kernel; the input and bias still get theirs', async () => {
    await engine.scope(async () => {
      const model = new Sequential({ conv1: new Conv2d(engine, 3, 4, 3, { padding: 1, seed: 5 }), relu: ReLU(), conv2: new Conv2d(engine, 4, 2, 3, { seed: 6 }) });
      try {
        const x = engine.tensor(Float32Array.from(ref.normal([2, 3, 6, 6], 9)), [2, 3, 6, 6], 'images');
        model.freeze('conv2.weight');
        const loss = ops.sum(model.forward(x));
        const { dispatches } = engine.traceDispatches(() => backward(loss));
        const labels = dispatches.map((d) => d.label);
        expect(labels.some((l) => l.includes('d(conv2.weight)'))).toBe(false);
        expect(labels.some((l) => l.includes('d(conv2.bias)'))).toBe(true);
        expect(labels.some((l) => l.includes('d(conv1.weight)'))).toBe(true);
        const conv2 = model.get('conv2') as Conv2d;
        expect(conv2.weight.grad).toBeNull();
        expect(conv2.bias!.grad).not.toBeNull();
        // Freezing every layer: nothing convolutional runs backwards at all.
        model.freeze();
        const loss2 = ops.sum(model.forward(x));
        expect(engine.traceDispatches(() => backward(loss2)).dispatches.filter((d) => /^(conv2d|col2im|matmul(_\w+)?)$/.test(d.kernel))).toEqual([]);
      } finally {
        model.dispose();
      }
    });
  });

  test("the weight gradient gathers from the forward's padded input, which a frozen weight's forward does not keep", async () => {
    await engine.scope(async () => {
      const conv = new Conv2d(engine, 8, 6, 3, { padding: 1, seed: 11 });
      try {
        const x = engine.tensor(Float32Array.from(ref.normal([2, 8, 5, 6], 12)), [2, 8, 5, 6], 'images');
        x.requiresGrad = true;
        const pads = (y: Tensor) => {
          const { result, dispatches } = engine.traceDispatches(() => gradients(ops.sum(y), [x, conv.weight]).get(conv.weight)!);
          const count = (kernel: string) => dispatches.filter((d) => d.kernel === kernel).length;
          return { dw: result, fills: count('fill'), copies: count('copy_block') };
        };
        // Trainable: the backward pads dz (the input gradient) but not x again.
        const kept = pads(conv.forward(x));
        // Frozen, then asked for explicitly: the backward pads x itself (zeros, then a copy), same gradient.
        conv.weight.frozen = true;
        const rebuilt = pads(conv.forward(x));
        expect([rebuilt.fills, rebuilt.copies]).toEqual([kept.fills + 1, kept.copies + 1]);
        expectClose(await rebuilt.dw.data(), await kept.dw.data(), { atol: 1e-5, rtol: 1e-5 }, 'weight gradient from a padded input made again');
      } finally {
        conv.dispose();
      }
    });
  });

  test('chunkBytes: the backward takes the batch a chunk of images at a time', async () => {
    await engine.scope(() => {
      const x = engine.zeros([5, 8, 4, 4], 'images');
      const w = engine.zeros([3, 8, 3, 3], 'w'); // one image's weight-gradient share: [3, 72]
      w.requiresGrad = true;
      const products = (chunkBytes?: number) => {
        const y = ops.conv2d(x, w, null, { padding: 1, chunkBytes });
        return engine.traceDispatches(() => gradients(ops.sum(y), [w])).dispatches.filter((d) => d.kernel === 'conv2d').length;
      };
      expect(products()).toBe(1);
      expect(products(2 * 3 * 72 * 4)).toBe(3); // 2 + 2 + 1 images
      expect(products(3 * 72 * 4)).toBe(5);
    });
  });

  test('bad inputs: errors name the op and the shapes', async () => {
    await engine.scope(async () => {
      const x = engine.zeros([2, 3, 5, 5], 'images');
      expect(() => ops.conv2d(x, engine.zeros([4, 2, 3, 3], 'w'), null)).toThrow(/conv2d: input has 3 channels but the weight expects 2 \(input images \[2,3,5,5\], weight w \[4,2,3,3\]/);
      expect(() => ops.conv2d(x, engine.zeros([4, 3, 7, 7], 'w'), null, { padding: 0 })).toThrow(/conv2d: kernel 7x7 is larger than the padded input 5x5 \(input images \[2,3,5,5\], weight w \[4,3,7,7\]/);
      expect(() => ops.conv2d(x, engine.zeros([4, 3, 7, 7], 'w'), null, { padding: 1 })).not.toThrow();
      expect(() => ops.conv2d(x, engine.zeros([4, 3, 3, 3], 'w'), engine.zeros([3], 'b'))).toThrow(/conv2d: bias must have shape \[4\].*bias b \[3\]/);
      expect(() => ops.conv2d(engine.zeros([3, 5, 5], 'flat'), engine.zeros([4, 3, 3, 3], 'w'), null)).toThrow(/conv2d: flat has shape \[3,5,5\], expected rank 4/);
      expect(() => ops.conv2d(x, engine.zeros([4, 3, 3, 3], 'w'), null, { stride: 0 })).toThrow(/conv2d: stride 0/);
      // The backward's per-image intermediates, checked at the op where they will be needed: the
      // weight gradient's share [OC = 4, C*3*3 = 27] (432 bytes), col2im's columns [27, 3*3] (972).
      const w = engine.zeros([4, 3, 3, 3], 'w');
      expect(() => ops.conv2d(x, w, null, { chunkBytes: 1 })).not.toThrow(); // nothing differentiated
      w.requiresGrad = true;
      expect(() => ops.conv2d(x, w, engine.zeros([4], 'b'), { chunkBytes: 400 })).toThrow(
        /conv2d: one image's weight-gradient share \[4, 27\] floats need 432 bytes, over the limit of 400 \(chunkBytes 400, maxStorageBufferBindingSize \d+\) \(input images \[2,3,5,5\]/,
      );
      const images = engine.zeros([2, 3, 5, 5], 'images');
      images.requiresGrad = true;
      expect(() => ops.conv2d(images, engine.zeros([4, 3, 3, 3], 'w'), null, { chunkBytes: 900 })).toThrow(/conv2d: one image's input-gradient columns \[27, 9\] floats need 972 bytes, over the limit of 900/);
      expect(() => ops.conv2d(x, w, null, { chunkBytes: 0 })).toThrow(/conv2d: chunkBytes 0 must be a positive integer/);
      expect(() => ops.maxPool2d(x, 6)).toThrow(/maxPool2d: kernel 6x6 is larger than the input images \[2,3,5,5\]/);
    });
  });
});

// ---------------------------------------------------------------- pooling

describe('pooling', () => {
  const cases: (ref.PoolGeometry & { max: boolean })[] = [
    { N: 3, C: 2, H: 7, W: 9, k: 2, stride: 2, max: true },
    { N: 1, C: 3, H: 6, W: 7, k: 3, stride: 1, max: true },
    { N: 2, C: 2, H: 9, W: 7, k: 3, stride: 2, max: true },
    // Stride above the kernel: elements in no window (and the rows and columns past the last
    // window) get 0 from the per-window backward; 1050 windows, not a multiple of a workgroup.
    { N: 5, C: 7, H: 13, W: 11, k: 2, stride: 2, max: true },
    { N: 2, C: 3, H: 11, W: 10, k: 2, stride: 3, max: true },
    { N: 2, C: 3, H: 11, W: 10, k: 2, stride: 3, max: false },
    { N: 3, C: 2, H: 7, W: 9, k: 2, stride: 2, max: false },
    { N: 2, C: 3, H: 7, W: 9, k: 3, stride: 2, max: false },
    { N: 1, C: 2, H: 6, W: 5, k: 2, stride: 1, max: false },
  ];
  cases.forEach((g, n) => {
    const name = `${g.max ? 'maxPool2d' : 'avgPool2d'} [${g.N},${g.C},${g.H},${g.W}] k ${g.k} stride ${g.stride}`;
    test(name, async () => {
      const shape = [g.N, g.C, g.H, g.W];
      await check(
        name,
        {
          inputs: [{ data: ref.normal(shape, 500 + n), shape }],
          gpu: ([x]) => (g.max ? ops.maxPool2d(x!, g.k, { stride: g.stride }) : ops.avgPool2d(x!, g.k, { stride: g.stride })),
          forward: ([x]) => ref.pool2d(x!, g, g.max),
          grad: ([x], dy) => [ref.pool2dGrad(x!, g, g.max, dy)],
          fdCount: 16,
        },
        600 + n,
      );
    });
  });

  test('max-pool ties: each window sends its gradient to exactly one element, the first maximum', async () => {
    await engine.scope(async () => {
      // Values from {0, 1}: most windows hold several equal maxima.
      const shape = [2, 2, 6, 7];
      const data = ref.uniform(shape, 77).map((v) => (v < 0.5 ? 0 : 1));
      data.fill(3, 0, 7); // a whole row of equal values
      for (const [k, stride] of [
        [2, 2],
        [2, 3],
        [3, 1],
        [3, 2],
      ] as const) {
        const x = engine.parameter(Float32Array.from(data), shape, 'ties');
        try {
          const y = ops.maxPool2d(x, k, { stride });
          const g = { N: 2, C: 2, H: 6, W: 7, k, stride };
          expect(Array.from(await y.data())).toEqual(Array.from(ref.pool2d(data, g, true).data));
          const dx = gradients(ops.sum(y), [x]).get(x)!;
          const got = await dx.data();
          // Sum of dy = 1 per window, all of it on the windows' first maxima.
          expect(Array.from(got)).toEqual(Array.from(ref.pool2dGrad(data, g, true, new Float64Array(y.size).fill(1))));
          expect(got.reduce((a, b) => a + b, 0)).toBe(y.size);
        } finally {
          x.dispose();
        }
      }
    });
  });

  test('max-pool saves its argmax only when the graph is recorded', async () => {
    await engine.scope(async () => {
      const x = engine.parameter(Float32Array.from(ref.normal([1, 2, 4, 4], 78)), [1, 2, 4, 4], 'x');
      try {
        const plain = noGrad(() => ops.maxPool2d(x, 2));
        expect(plain.node).toBeNull();
        const y = ops.maxPool2d(x, 2);
        expect(y.node!.saved.map((t) => t.name)).toEqual(['maxPool2d.argmax']);
        expect(Array.from(await plain.data())).toEqual(Array.from(await y.data()));
      } finally {
        x.dispose();
      }
    });
  });

  test('globalAvgPool: [N, C, H, W] to [N, C]', async () => {
    const shape = [3, 5, 7, 9];
    // The reference: a mean over the 63 pixels of each of the 15 planes.
    const mean = (x: Float64Array): ref.Arr => ({ data: ref.reduce(x, [15, 63], 1, true).data, shape: [3, 5] });
    await check(
      'globalAvgPool',
      {
        inputs: [{ data: ref.normal(shape, 700), shape }],
        gpu: ([x]) => ops.globalAvgPool(x!),
        forward: ([x]) => mean(x!),
        grad: (_, dy) => [ref.reduceGrad([15, 63], 1, true, dy)],
      },
      701,
    );
  });
});

// ---------------------------------------------------------------- learning

async function fetchBytes(file: string): Promise<Uint8Array> {
  const response = await fetch(`/tests/data/fashion-mnist/${file}`);
  if (!response.ok) throw new Error(`fetch ${file}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// Measured on SwiftShader: 0.779 test accuracy after 3 epochs (~53 s of training; 2 epochs gave
// 0.755, 4 gave 0.81). Deterministic (seeded init and shuffling, no atomics).
const EPOCHS = 3;
const MIN_ACCURACY = 0.74;

test('a CNN learns Fashion-MNIST: at least 74% test accuracy on held-out images', async () => {
  const [train, testSet] = await Promise.all([loadFashionMnist(fetchBytes, 'train'), loadFashionMnist(fetchBytes, 'test')]);
  const asData = (s: typeof train): ClassificationData => ({ inputs: s.images, labels: s.labels, count: s.count, features: 784, classes: 10 });
  const model = new Sequential({
    image: new Reshape([1, 28, 28]),
    conv1: new Conv2d(engine, 1, 8, 5, { padding: 2, seed: 21 }),
    relu1: ReLU(),
    pool1: new MaxPool2d(2),
    conv2: new Conv2d(engine, 8, 16, 5, { padding: 2, seed: 22 }),
    relu2: ReLU(),
    pool2: new MaxPool2d(2),
    flatten: new Flatten(),
    fc: new Dense(engine, 16 * 7 * 7, 10, { seed: 23 }),
  });
  try {
    const before = await evaluate(engine, model, asData(testSet));
    const optimizer = new Adam(model.parameters(), { lr: 2e-3 });
    const t0 = performance.now();
    const result = await fit(engine, model, optimizer, asData(train), { epochs: EPOCHS, batchSize: 50, seed: 3, logEvery: 20, checkFinite: true });
    const trainSeconds = (performance.now() - t0) / 1000;
    const after = await evaluate(engine, model, asData(testSet));
    console.log(
      `CNN fashion-mnist subset: test accuracy ${before.accuracy} -> ${after.accuracy}, loss ${before.loss.toFixed(3)} -> ${after.loss.toFixed(3)}, ${trainSeconds.toFixed(1)} s training, ${result.samplesPerSecond.toFixed(0)} samples/s`,
    );
    expect(before.accuracy).toBeLessThan(0.3);
    expect(after.accuracy).toBeGreaterThanOrEqual(MIN_ACCURACY);
    expect(result.losses.at(-1)!.loss).toBeLessThan(result.losses[0]!.loss);
  } finally {
    model.dispose();
  }
});
