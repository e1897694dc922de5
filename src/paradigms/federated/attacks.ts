// Poisoned clients for robustness experiments and tests: what a malicious client sends in place
// of its honest delta. The three standard untargeted attacks (Fang et al. 2020, Li et al. 2019
// "RSA", Blanchard et al. 2017): flip the update's sign, scale it up (boosting, model
// replacement), or send Gaussian noise.
import { gaussianNoise, norm, scale, scaleBy } from '../../engine/ops/index.js';
import type { Tensor } from '../../engine/tensor.js';

export type Attack =
  /** -factor * delta (default factor 4). */
  | { kind: 'sign-flip'; factor?: number }
  /** factor * delta (default 10: about the number of clients in a round, as in model replacement). */
  | { kind: 'scale'; factor?: number }
  /** Noise N(0, std^2) per element, std by default chosen so that the noise's norm is about factor x the honest delta's (factor default 1). */
  | { kind: 'noise'; factor?: number; std?: number };

export const ATTACKS = ['sign-flip', 'scale', 'noise'] as const;

/** The delta a client running `attack` sends instead of `delta`; a new tensor the caller owns. */
export function poisonDelta(delta: Tensor, attack: Attack, seed: number): Tensor {
  const factor = attack.factor ?? (attack.kind === 'sign-flip' ? 4 : attack.kind === 'scale' ? 10 : 1);
  if (!(factor > 0) || !Number.isFinite(factor)) throw new Error(`poisonDelta: ${attack.kind} factor ${factor} must be a positive finite number`);
  switch (attack.kind) {
    case 'sign-flip':
      return scale(delta, -factor);
    case 'scale':
      return scale(delta, factor);
    case 'noise': {
      if (attack.std !== undefined) {
        if (!(attack.std > 0) || !Number.isFinite(attack.std)) throw new Error(`poisonDelta: noise std ${attack.std} must be a positive finite number`);
        return gaussianNoise(delta.engine, delta.shape, { seed, std: attack.std });
      }
      // Unit-variance noise has norm ~ sqrt(n); rescaled on the GPU to factor x ||delta||.
      const unit = gaussianNoise(delta.engine, delta.shape, { seed, std: 1 / Math.sqrt(delta.size) });
      const length = norm(delta);
      const size = scale(length, factor);
      const out = scaleBy(unit, size);
      for (const t of [unit, length, size]) t.dispose();
      return out;
    }
    default:
      throw new Error(`poisonDelta: unknown attack ${(attack as { kind: string }).kind} (known: ${ATTACKS.join(', ')})`);
  }
}
