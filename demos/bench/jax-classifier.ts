// The bench's MLP and FedAvg CNN in jax-js (@jax-js/jax 0.1.25) on its WebGPU device: forward,
// softmax cross-entropy, gradient and Adam (jax-train.ts) as one jit, its fastest documented path.
// The CNN is NCHW as ours: lax.conv with 'SAME' padding (kernels [C_out, C_in, 5, 5]) and max-pool
// through lax.reduceWindow (lax.reduce_window, as Flax's max_pool), both differentiated under jit.
import { blockUntilReady, jit, lax, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';
import { adamUpdate, AdamState, uniformArray, type ParamTree } from './jax-train.js';

/** Rows of inputs (shaped by the model) and one-hot labels, as the bench's other libraries take them. */
export interface ClassifierBatch {
  x: Float32Array<ArrayBuffer>;
  y: Float32Array<ArrayBuffer>;
}

/** A model for JaxClassifier: its initial weights and its logits for a batch (consumes both). */
interface ClassifierModel<P extends ParamTree> {
  params: P;
  /** A batch's input shape, batch first. */
  xShape: number[];
  logits(p: P, x: np.Array): np.Array;
}

const dense = (x: np.Array, w: np.Array, b: np.Array) => np.dot(x, w).add(b);
/** PyTorch's default initialisation bound for a layer of `fanIn` inputs. */
const bound = (fanIn: number) => 1 / Math.sqrt(fanIn);

/** 784-256-10, ReLU. */
export function mlpModel(batch: number, rand: () => number): ClassifierModel<{ w1: np.Array; b1: np.Array; w2: np.Array; b2: np.Array }> {
  return {
    params: { w1: uniformArray([784, 256], bound(784), rand), b1: np.zeros([256]), w2: uniformArray([256, 10], bound(256), rand), b2: np.zeros([10]) },
    xShape: [batch, 784],
    logits: (p, x) => dense(nn.relu(dense(x, p.w1, p.b1)), p.w2, p.b2),
  };
}

/** The FedAvg CNN: conv5x5 32 same, maxpool 2, conv5x5 64 same, maxpool 2, dense 512, dense 10, ReLU; 28x28x1 inputs. */
export function cnnModel(batch: number, rand: () => number): ClassifierModel<{ k1: np.Array; c1: np.Array; k2: np.Array; c2: np.Array; w1: np.Array; b1: np.Array; w2: np.Array; b2: np.Array }> {
  const conv = (x: np.Array, k: np.Array, c: np.Array) => nn.relu(lax.conv(x, k, [1, 1], 'SAME').add(c.reshape([1, -1, 1, 1])));
  const maxPool2 = (x: np.Array) => lax.reduceWindow(x, (window) => np.max(window), [2, 2], [2, 2]);
  return {
    params: {
      k1: uniformArray([32, 1, 5, 5], bound(25), rand),
      c1: np.zeros([32]),
      k2: uniformArray([64, 32, 5, 5], bound(32 * 25), rand),
      c2: np.zeros([64]),
      w1: uniformArray([64 * 7 * 7, 512], bound(64 * 7 * 7), rand),
      b1: np.zeros([512]),
      w2: uniformArray([512, 10], bound(512), rand),
      b2: np.zeros([10]),
    },
    xShape: [batch, 1, 28, 28],
    logits: (p, x) => {
      const features = maxPool2(conv(maxPool2(conv(x, p.k1, p.c1)), p.k2, p.c2)).reshape([batch, 64 * 7 * 7]);
      return dense(nn.relu(dense(features, p.w1, p.b1)), p.w2, p.b2);
    },
  };
}

/** Mean softmax cross-entropy against one-hot labels (consumes both). */
const crossEntropy = (logits: np.Array, labels: np.Array) => nn.logSoftmax(logits).mul(labels).sum().mul(-1 / logits.shape[0]!);

/** Forward, gradient and Adam update of one batch, as one jit (compiled on its first call). */
function compileTrainStep(model: ClassifierModel<ParamTree>) {
  const lossAndGradient = valueAndGrad((p: ParamTree, x: np.Array, y: np.Array) => crossEntropy(model.logits(p, x), y));
  return jit((p: ParamTree, m: ParamTree, v: ParamTree, x: np.Array, y: np.Array, lr: np.Array) => {
    const [loss, g] = lossAndGradient(tree.ref(p), x, y);
    return [...adamUpdate(p, m, v, g, lr), loss] as const;
  });
}

export class JaxClassifier {
  private params: ParamTree;
  private readonly adam: AdamState<ParamTree>;
  private readonly trainStep: ReturnType<typeof compileTrainStep>;

  /** Trains `model` with Adam at `lr`, on jax-js's default device (startJaxWebGpu). */
  constructor(private readonly model: ClassifierModel<ParamTree>, lr: number) {
    this.params = model.params;
    this.adam = new AdamState(this.params, lr);
    this.trainStep = compileTrainStep(model);
  }

  private inputs(b: ClassifierBatch): [np.Array, np.Array] {
    const batch = this.model.xShape[0]!;
    return [np.array(b.x).reshape(this.model.xShape), np.array(b.y).reshape([batch, b.y.length / batch])];
  }

  /** Milliseconds a step over `steps` steps on the batches in turn, synchronised only at the end (the first call traces and compiles the step). */
  async steps(data: ClassifierBatch[], steps: number): Promise<number> {
    // jax-js is lazy: waiting on every parameter runs every step's whole update, not only one parameter's kernels.
    const sync = () => blockUntilReady(this.params);
    await sync();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      let loss: np.Array;
      [this.params, this.adam.m, this.adam.v, loss] = this.trainStep(this.params, this.adam.m, this.adam.v, ...this.inputs(data[i % data.length]!), this.adam.nextLr());
      loss.dispose();
    }
    await sync();
    return (performance.now() - t0) / steps;
  }

  /** The loss on one batch (eager, no update). */
  async loss(b: ClassifierBatch): Promise<number> {
    const [x, y] = this.inputs(b);
    const loss = crossEntropy(this.model.logits(tree.ref(this.params), x), y);
    return (await loss.data())[0]!;
  }

  dispose(): void {
    tree.dispose(this.params);
    this.adam.dispose();
  }
}
