// GFLOP/s of conv2d's three passes (with a bias) on the FedAvg CNN's two convolutions (batch 64,
// 5x5 'same'), FLOPs 2*N*OC*OH*OW*C*25 for each, and of the matmul kernel alone on the product the
// forward would be with its columns written out: 64 images of W[OC, KA] . col[KA, OH*OW], KA =
// C*5*5 rounded up to a multiple of 4 (its vec4 path), FLOPs 2*N*OC*OH*OW*KA. GPU time from
// engine.profile (timestamp queries where the adapter has them, else submit-to-done), summed over
// every kernel a pass dispatches (the padding, the products, col2im, the sums); the best of
// `rounds`, the four measured in turn in each round.
import { conv2d, gradients, type Engine } from '../../src/index.js';
import { batchedGemm } from '../../src/engine/ops/matmul.js';

export const CONV_LAYERS = {
  conv1: { C: 1, H: 28, OC: 32 },
  conv2: { C: 32, H: 14, OC: 64 },
} as const;
const BATCH = 64;
const KERNEL = 5;
const PADDING = 2;

export interface ConvPassFigures {
  matmul: number;
  forward: number;
  backward_input: number;
  backward_weight: number;
}

export interface ConvFigures {
  method: string;
  gflops: Record<keyof typeof CONV_LAYERS, ConvPassFigures>;
  /** Each pass's GFLOP/s over the matmul kernel's on its layer's product. */
  overMatmul: Record<keyof typeof CONV_LAYERS, Omit<ConvPassFigures, 'matmul'>>;
}

export async function convFigures(engine: Engine, rounds: number): Promise<ConvFigures> {
  let method = '';
  const gflops = {} as ConvFigures['gflops'];
  const overMatmul = {} as ConvFigures['overMatmul'];
  for (const [layer, { C, H, OC }] of Object.entries(CONV_LAYERS) as [keyof typeof CONV_LAYERS, (typeof CONV_LAYERS)[keyof typeof CONV_LAYERS]][]) {
    const K = C * KERNEL * KERNEL;
    const KA = Math.ceil(K / 4) * 4;
    const pixels = H * H;
    const flops = (k: number) => 2 * BATCH * OC * pixels * k;
    const figures = await engine.scope(async () => {
      const random = async (shape: number[], seed: number, name: string) => engine.parameter(await engine.randn(shape, { seed, name }).data(), shape, name);
      const x = await random([BATCH, C, H, H], 1, `${layer}.x`);
      const w = await random([OC, C, KERNEL, KERNEL], 2, `${layer}.weight`);
      const b = await random([OC], 3, `${layer}.bias`);
      const dy = engine.randn([BATCH, OC, H, H], { seed: 4, name: `${layer}.dy` });
      const a = engine.randn([OC, KA], { seed: 5, name: `${layer}.a` });
      const cols = engine.randn([BATCH, KA, pixels], { seed: 6, name: `${layer}.b` });
      const c = engine.empty([BATCH, OC, pixels], `${layer}.c`);
      const y = conv2d(x, w, b, { padding: PADDING });
      const passes: Record<keyof ConvPassFigures, () => unknown> = {
        matmul: () => batchedGemm('bench', { batch: BATCH, M: OC, N: pixels, K: KA, a: { tensor: a }, b: { tensor: cols, stride: KA * pixels }, c: { tensor: c, stride: OC * pixels } }),
        forward: () => conv2d(x, w, b, { padding: PADDING }),
        backward_input: () => gradients(y, [x], dy),
        backward_weight: () => gradients(y, [w], dy),
      };
      const best: ConvPassFigures = { matmul: 0, forward: 0, backward_input: 0, backward_weight: 0 };
      for (const pass of Object.values(passes)) await engine.scope(pass); // compiles the pipelines
      for (let r = 0; r < rounds; r++) {
        for (const [name, pass] of Object.entries(passes) as [keyof ConvPassFigures, () => unknown][]) {
          const { profile } = await engine.profile(() => engine.scope(pass));
          method = profile.method;
          best[name] = Math.max(best[name], flops(name === 'matmul' ? KA : K) / (profile.totalMs * 1e6));
        }
      }
      return best;
    });
    const round3 = (v: number) => Math.round(v * 1000) / 1000;
    gflops[layer] = { matmul: round3(figures.matmul), forward: round3(figures.forward), backward_input: round3(figures.backward_input), backward_weight: round3(figures.backward_weight) };
    overMatmul[layer] = {
      forward: round3(figures.forward / figures.matmul),
      backward_input: round3(figures.backward_input / figures.matmul),
      backward_weight: round3(figures.backward_weight / figures.matmul),
    };
  }
  return { method, gflops, overMatmul };
}
