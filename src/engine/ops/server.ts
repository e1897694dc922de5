// The server-side optimizer update of federated strategies (FedAvgM's momentum, and FedAdam,
// FedYogi and FedAdagrad from Reddi et al. 2021 as Flower's FedOpt family) in one kernel,
// server_optimizer.wgsl: it reads the global weights, the average client delta and the state and
// writes the new weights and the state in one pass. Composing it from the elementwise ops would
// take about eight kernels and as many [P] temporaries per round.
import { shapeString, type Tensor } from '../tensor.js';
import { alive, sameShape } from './check.js';

export type ServerOptimizerVariant = 'avgm' | 'adam' | 'yogi' | 'adagrad';
const VARIANTS: Record<ServerOptimizerVariant, number> = { avgm: 0, adam: 1, yogi: 2, adagrad: 3 };
/** Which state each variant keeps: m (momentum or first moment), v (second moment). */
const USES: Record<ServerOptimizerVariant, { m: boolean; v: boolean }> = {
  avgm: { m: true, v: false },
  adam: { m: true, v: true },
  yogi: { m: true, v: true },
  adagrad: { m: false, v: true },
};

export interface ServerOptimizerSettings {
  /** FedAvgM: the server learning rate; the others: eta (FedAdam's with its bias correction). */
  rate: number;
  /** FedAvgM: the server momentum; FedAdam, FedYogi: beta_1. */
  beta1?: number;
  /** FedAdam, FedYogi: beta_2. */
  beta2?: number;
  /** FedAdam, FedYogi, FedAdagrad: tau, the adaptivity in the denominator sqrt(v) + tau. */
  tau?: number;
  /** The variant's state, [P] tensors updated in place: m for avgm, adam, yogi; v for adam, yogi, adagrad. */
  m?: Tensor;
  v?: Tensor;
}

/**
 * The new global weights [P] from the global weights and the average client delta (client weights
 * - global), one server-optimizer step of the given variant (see server_optimizer.wgsl for the
 * formulas); the state tensors are updated in place. Not recorded by autograd.
 */
export function serverOptimizerStep(variant: ServerOptimizerVariant, global: Tensor, delta: Tensor, settings: ServerOptimizerSettings): Tensor {
  const op = `serverOptimizerStep(${variant})`;
  const uses = USES[variant];
  if (!uses) throw new Error(`serverOptimizerStep: unknown variant ${variant}; expected one of ${Object.keys(USES).join(', ')}`);
  const state = [...(uses.m ? [settings.m] : []), ...(uses.v ? [settings.v] : [])];
  if (state.some((t) => t === undefined)) throw new Error(`${op}: needs ${uses.m ? 'm ' : ''}${uses.v ? 'v ' : ''}state tensors`);
  alive(op, global, delta, ...(state as Tensor[]));
  sameShape(op, global, delta);
  for (const t of state as Tensor[]) {
    if (t.size !== global.size) throw new Error(`${op}: state ${t.name} ${shapeString(t.shape)} has ${t.size} elements; global ${global.name} ${shapeString(global.shape)} has ${global.size}`);
  }
  for (const [name, value] of Object.entries({ rate: settings.rate, beta1: settings.beta1 ?? 0, beta2: settings.beta2 ?? 0, tau: settings.tau ?? 0 })) {
    if (!Number.isFinite(value)) throw new Error(`${op}: ${name} ${value} must be a finite number`);
  }
  const engine = global.engine;
  const out = engine.empty(global.shape, op);
  const unused = engine.placeholder();
  engine.dispatch('server_optimizer', {
    bindings: { x: global, d: delta, m: settings.m ?? unused, v: settings.v ?? unused, out },
    uniforms: { n: global.size, rate: settings.rate, beta1: settings.beta1 ?? 0, beta2: settings.beta2 ?? 0, tau: settings.tau ?? 0 },
    constants: { VARIANT: VARIANTS[variant] },
    threads: global.size,
    flops: 8 * global.size,
  });
  return out;
}
