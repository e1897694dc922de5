// GFLOP/s of conv2d's three passes (with a bias) on the FedAvg CNN's two convolutions (batch 64,
// 5x5 'same'), FLOPs 2*N*OC*OH*OW*C*25 for each, and of the matmul kernel alone on the product each
// pass would be with its columns written out (64 images each; K = C*5*5, and OC*5*5 for the input
// gradient, rounded up to a multiple of 4 for the vec4 path, FLOPs 2*M*N*K of the product):
//   matmul:        the forward's, W[OC, K] . col[K, OH*OW]
//   matmul_input:  the input gradient's as a convolution of dy, W'[C, OC*25] . col(dy)[OC*25, H*W]
//   matmul_weight: the weight gradient's per-image share, dy[OC, OH*OW] . col[K, OH*OW]^T
// conv_over_matmul is each pass over its own product's figure. GPU time from engine.profile
// (timestamp queries where the adapter has them, else submit-to-done), summed over every kernel a
// pass dispatches (the padding, the products, col2im, the sums); the best of `rounds`, the six
// measured in turn in each round.
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
  matmul_input: number;
  matmul_weight: number;
  forward: number;
  backward_input: number;
  backward_weight: number;
}

export interface ConvFigures {
  method: string;
  gflops: Record<keyof typeof CONV_LAYERS, ConvPassFigures>;
  /** Each pass's GFLOP/s over the matmul kernel's on the pass's product. */
  overMatmul: Record<keyof typeof CONV_LAYERS, Pick<ConvPassFigures, 'forward' | 'backward_input' | 'backward_weight'>>;
}

export async function convFigures(engine: Engine, rounds: number): Promise<ConvFigures> {
  let method = '';
  const gflops = {} as ConvFigures['gflops'];
  const overMatmul = {} as ConvFigures['overMatmul'];
  for (const [layer, { C, H, OC }] of Object.entries(CONV_LAYERS) as [keyof typeof CONV_LAYERS, (typeof CONV_LAYERS)[keyof typeof CONV_LAYERS]][]) {
    const K = C * KERNEL * KERNEL;
    const KA = Math.ceil(K / 4) * 4;
    const KI = Math.ceil((OC * KERNEL * KERNEL) / 4) * 4;
    const pixels = H * H;
    const convFlops = 2 * BATCH * OC * pixels * K;
    const figures = await engine.scope(async () => {
      const random = async (shape: number[], seed: number, name: string) => engine.parameter(await engine.randn(shape, { seed, name }).data(), shape, name);
      const x = await random([BATCH, C, H, H], 1, `${layer}.x`);
      const w = await random([OC, C, KERNEL, KERNEL], 2, `${layer}.weight`);
      const b = await random([OC], 3, `${layer}.bias`);
      const dy = engine.randn([BATCH, OC, H, H], { seed: 4, name: `${layer}.dy` });
      const weights = engine.randn([OC, KA], { seed: 5, name: `${layer}.a` });
      const cols = engine.randn([BATCH, KA, pixels], { seed: 6, name: `${layer}.b` });
      const swapped = engine.randn([C, KI], { seed: 7, name: `${layer}.swapped` });
      const dyCols = engine.randn([BATCH, KI, pixels], { seed: 8, name: `${layer}.dy_columns` });
      const outputs = engine.empty([BATCH, OC, pixels], `${layer}.c`);
      const inputs = engine.empty([BATCH, C, pixels], `${layer}.dx`);
      const shares = engine.empty([BATCH, OC, KA], `${layer}.shares`);
      const y = conv2d(x, w, b, { padding: PADDING });
      const passes: Record<keyof ConvPassFigures, { run: () => unknown; flops: number }> = {
        matmul: {
          run: () => batchedGemm('bench', { batch: BATCH, M: OC, N: pixels, K: KA, a: { tensor: weights }, b: { tensor: cols, stride: KA * pixels }, c: { tensor: outputs, stride: OC * pixels } }),
          flops: 2 * BATCH * OC * pixels * KA,
        },
        matmul_input: {
          run: () => batchedGemm('bench', { batch: BATCH, M: C, N: pixels, K: KI, a: { tensor: swapped }, b: { tensor: dyCols, stride: KI * pixels }, c: { tensor: inputs, stride: C * pixels } }),
          flops: 2 * BATCH * C * pixels * KI,
        },
        matmul_weight: {
          run: () => batchedGemm('bench', { batch: BATCH, M: OC, N: KA, K: pixels, a: { tensor: dy, stride: OC * pixels }, b: { tensor: cols, stride: KA * pixels }, transB: true, c: { tensor: shares, stride: OC * KA } }),
          flops: 2 * BATCH * OC * KA * pixels,
        },
        forward: { run: () => conv2d(x, w, b, { padding: PADDING }), flops: convFlops },
        backward_input: { run: () => gradients(y, [x], dy), flops: convFlops },
        backward_weight: { run: () => gradients(y, [w], dy), flops: convFlops },
      };
      const best: ConvPassFigures = { matmul: 0, matmul_input: 0, matmul_weight: 0, forward: 0, backward_input: 0, backward_weight: 0 };
      for (const pass of Object.values(passes)) await engine.scope(pass.run); // compiles the pipelines
      for (let r = 0; r < rounds; r++) {
        for (const [name, pass] of Object.entries(passes) as [keyof ConvPassFigures, (typeof passes)[keyof ConvPassFigures]][]) {
          const { profile } = await engine.profile(() => engine.scope(pass.run));
          method = profile.method;
          best[name] = Math.max(best[name], pass.flops / (profile.totalMs * 1e6));
        }
      }
      return best;
    });
    const round3 = (v: number) => Math.round(v * 1000) / 1000;
    const rounded = { ...figures };
    for (const name of Object.keys(rounded) as (keyof ConvPassFigures)[]) rounded[name] = round3(rounded[name]);
    gflops[layer] = rounded;
    overMatmul[layer] = {
      forward: round3(figures.forward / figures.matmul),
      backward_input: round3(figures.backward_input / figures.matmul_input),
      backward_weight: round3(figures.backward_weight / figures.matmul_weight),
    };
  }
  return { method, gflops, overMatmul };
}
