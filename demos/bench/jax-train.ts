// What the bench's jax-js (@jax-js/jax 0.1.25) models share: its WebGPU device, and Adam written
// with its array ops inside each model's jitted step (its optimizer package, @jax-js/optax, is not
// on the npm registry). Arrays follow jax-js's ownership rules: every call consumes its
// arguments, `.ref` keeps one.
import { defaultDevice, getWebGPUDevice, init, numpy as np, tree } from '@jax-js/jax';

export type ParamTree = Record<string, np.Array>;

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-8;

/** Starts jax-js's WebGPU backend (its own device) and makes it the default device. */
export async function startJaxWebGpu(): Promise<void> {
  if (!(await init('webgpu')).includes('webgpu')) throw new Error('jax-js: the webgpu backend did not initialise');
  defaultDevice('webgpu');
}

/** The adapter jax-js's device runs on (vendor and architecture). */
export function jaxAdapter(): string {
  const info = getWebGPUDevice().adapterInfo;
  return [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown';
}

/** Adam's moments (zeros like the parameters) and step count, threaded through a jitted step. */
export class AdamState<P extends ParamTree> {
  m: P;
  v: P;
  private steps = 0;

  constructor(params: P, private readonly lr: number) {
    this.m = tree.map((w: np.Array) => np.zerosLike(w), tree.ref(params)) as P;
    this.v = tree.map((w: np.Array) => np.zerosLike(w), tree.ref(params)) as P;
  }

  /** The next step's learning rate with Adam's bias corrections folded in, a scalar array so that every step runs the same program. */
  nextLr(): np.Array {
    const k = ++this.steps;
    return np.array([(this.lr * Math.sqrt(1 - BETA2 ** k)) / (1 - BETA1 ** k)]).reshape([]);
  }

  dispose(): void {
    tree.dispose([this.m, this.v]);
  }
}

/** Adam's update inside a jitted step, from gradients `g` and the step's `lr` (AdamState.nextLr): the next parameters and moments (consumes every argument). */
export function adamUpdate<P extends ParamTree>(p: P, m: P, v: P, g: P, lr: np.Array): [P, P, P] {
  const mNext = tree.map((mi: np.Array, gi: np.Array) => mi.mul(BETA1).add(gi.mul(1 - BETA1)), m, tree.ref(g)) as P;
  const vNext = tree.map((vi: np.Array, gi: np.Array) => vi.mul(BETA2).add(gi.ref.mul(gi).mul(1 - BETA2)), v, g) as P;
  const pNext = tree.map((pi: np.Array, mi: np.Array, vi: np.Array) => pi.sub(mi.mul(lr.ref).div(np.sqrt(vi).add(EPSILON))), p, tree.ref(mNext), tree.ref(vNext)) as P;
  lr.dispose();
  return [pNext, mNext, vNext];
}

/** Uniform(-scale, scale) values from `rand`, as an array of `shape`. */
export function uniformArray(shape: number[], scale: number, rand: () => number): np.Array {
  const size = shape.reduce((a, b) => a * b, 1);
  return np.array(Float32Array.from({ length: size }, () => (2 * rand() - 1) * scale)).reshape(shape);
}
