// Learning-rate schedules: functions from the step number (0-based) to a factor on the base rate.

export type Schedule = (step: number) => number;

/** Multiplies the rate by gamma every stepSize steps. */
export function stepDecay(stepSize: number, gamma = 0.1): Schedule {
  if (!(stepSize > 0)) throw new Error(`stepDecay: stepSize ${stepSize} must be positive`);
  return (step) => gamma ** Math.floor(step / stepSize);
}

/**
 * Linear warm-up from 0 over `warmup` steps, then half a cosine from 1 down to `minFactor`
 * at `totalSteps` (and `minFactor` after it).
 */
export function cosineDecay(totalSteps: number, options: { warmup?: number; minFactor?: number } = {}): Schedule {
  const warmup = options.warmup ?? 0;
  const minFactor = options.minFactor ?? 0;
  if (!(totalSteps > warmup)) throw new Error(`cosineDecay: totalSteps ${totalSteps} must exceed warmup ${warmup}`);
  return (step) => {
    if (step < warmup) return (step + 1) / warmup;
    const t = Math.min(1, (step - warmup) / (totalSteps - warmup));
    return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * t));
  };
}
