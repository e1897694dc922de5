// Every matmul kernel variant (forced through engine.tuning) against the float64 reference:
// matmul forward and backward (with finite differences) for both transposes on shapes that are
// not multiples of any variant's tile (M = 1, K = 3, 37 x 53 x 29, the aligned vec4 path with
// ragged M and N), the fused bias + activation epilogue, and a batch of 3 strided matrices.
// The subgroup variant runs where the adapter has `subgroups` (SwiftShader does).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Engine } from '../../src/engine/engine.js';
import * as ops from '../../src/engine/ops/index.js';
import { matmulTuning, subgroupSizes, type MatmulChoice } from '../../src/engine/ops/matmul.js';
import { ACCUMULATED } from '../close.js';
import { checkBatchedGemm, matmulCase, type BatchedGemmCase } from '../matmul-check.js';
import { opChecker } from '../op-check.js';
import * as ref from '../reference.js';

let engine: Engine;

beforeAll(async () => {
  engine = await Engine.create();
});

afterAll(async () => {
  await engine?.sync();
});

const checkOp = opChecker(() => engine, 4000, { tol: ACCUMULATED, fdCount: 6 });

// Small workgroups, so that the shapes below span several workgroups with ragged edges.
const CHOICES: MatmulChoice[] = [
  { variant: 'block4', constants: { WG_X: 4, WG_Y: 2 } },
  { variant: 'block8', constants: { WG_X: 2, WG_Y: 4 } },
  { variant: 'tiled', constants: { WG_X: 4, WG_Y: 2, BK: 8 } },
  { variant: 'subgroup', constants: { WG: 128, QX: 2 } },
];

// [M, K, N]: element-wise path; M = 1; K = 3; the vec4 path with M, N not multiples of any tile.
const SIZES: [number, number, number][] = [
  [37, 53, 29],
  [1, 7, 5],
  [6, 3, 9],
  [37, 52, 36],
];

function use(choice: MatmulChoice): boolean {
  if (choice.variant === 'subgroup' && !subgroupSizes(engine)) return false;
  engine.tuning.set('matmul', matmulTuning(choice));
  return true;
}

for (const choice of CHOICES) {
  const label = `${choice.variant} ${JSON.stringify(choice.constants)}`;
  describe(label, () => {
    for (const [M, K, N] of SIZES) {
      for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
        const name = `matmul [${M},${K}]x[${K},${N}] transA=${transA} transB=${transB}`;
        test(name, async (ctx) => {
          if (!use(choice)) return ctx.skip();
          await checkOp(`${label} ${name}`, matmulCase(M, K, N, transA, transB, ACCUMULATED));
        });
      }
    }

    test('linear [19,12]x[13,12]^T + bias, sigmoid (the fused epilogue)', async (ctx) => {
      if (!use(choice)) return ctx.skip();
      const [rows, inF, outF] = [19, 12, 13];
      const pre = (x: Float64Array, w: Float64Array, b: Float64Array) => ref.addBias(ref.matmul(x, [rows, inF], w, [outF, inF], false, true).data, b);
      await checkOp(`${label} linear`, {
        inputs: [
          { data: ref.normal([rows, inF], 5), shape: [rows, inF] },
          { data: ref.normal([outF, inF], 6, 0.5), shape: [outF, inF] },
          { data: ref.normal([outF], 7), shape: [outF] },
        ],
        gpu: ([x, w, b]) => ops.linear(x!, w!, b!, 'sigmoid'),
        forward: ([x, w, b]) => ({ data: ref.unary('sigmoid', pre(x!, w!, b!)), shape: [rows, outF] }),
        grad: ([x, w, b], dy) => {
          const z = pre(x!, w!, b!);
          const dz = ref.unaryGrad('sigmoid', z, dy);
          const [dx, dw] = ref.matmulGrad(x!, [rows, inF], w!, [outF, inF], dz, false, true);
          return [dx, dw, ref.addBiasGrad(z, b!, dz)[1]];
        },
        tol: { atol: 2e-5, rtol: 1e-4 },
      });
    });

    // [offset, stride] per operand; the second case takes the vec4 path.
    const batched: Record<string, BatchedGemmCase> = {
      'batch 3, unaligned offsets, A transposed, bias + relu': { batch: 3, M: 13, N: 7, K: 11, transA: true, a: [3, 150], b: [1, 80], c: [2, 95], bias: [5, 9], activation: 'relu' },
      'batch 3, aligned strides, B transposed, M and N ragged': { batch: 3, M: 10, N: 9, K: 12, transB: true, a: [4, 124], b: [8, 112], c: [1, 91] },
    };
    for (const [name, c] of Object.entries(batched)) {
      test(name, async (ctx) => {
        if (!use(choice)) return ctx.skip();
        await checkBatchedGemm(engine, `${label} ${name}`, c, ACCUMULATED);
      });
    }
  });
}

test('the adapter reports subgroups, so the subgroup variant is tested here', () => {
  // SwiftShader has the feature; on an adapter without it this says so rather than skipping silently.
  expect(subgroupSizes(engine), `${engine.adapterName} has no usable subgroups`).not.toBeNull();
});
