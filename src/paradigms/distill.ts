// Knowledge distillation (Hinton, Vinyals & Dean 2015): a small student learns from a large
// teacher's temperature-softened outputs as well as from the hard labels. The teacher is fixed,
// so its logits for the training rows are computed once; each step looks up its batch's rows.
import type { Engine } from '../engine/engine.js';
import type { Module } from '../engine/module.js';
import { distillationLoss, type DistillationOptions } from '../engine/ops/index.js';
import type { Optimizer } from '../engine/optim.js';
import { fit, oneHot, outputs, takeRows, type ClassificationData, type FitOptions, type FitResult } from './train.js';

export interface DistillOptions extends Omit<FitOptions, 'lossFn'>, DistillationOptions {
  /**
   * Extra rows without labels (features values each) that the teacher labels softly: the
   * "transfer set" of the paper. They get the soft term only.
   */
  unlabelled?: Float32Array;
}

/** Trains `student` on `data` (and `unlabelled` rows) against `teacher`'s softened logits mixed with the hard labels. */
export async function distill(engine: Engine, teacher: Module, student: Module, optimizer: Optimizer, data: ClassificationData, options: DistillOptions): Promise<FitResult & { teacherSeconds: number }> {
  const extra = options.unlabelled ?? new Float32Array(0);
  const unlabelledCount = extra.length / data.features;
  if (!Number.isInteger(unlabelledCount)) throw new Error(`distill: ${extra.length} unlabelled values are not rows of ${data.features} features`);
  const inputs = new Float32Array(data.inputs.length + extra.length);
  inputs.set(data.inputs);
  inputs.set(extra, data.inputs.length);
  const count = data.count + unlabelledCount;
  // Hard targets: one-hot for labelled rows, zeros (no hard term) for the unlabelled ones.
  const hard = new Float32Array(count * data.classes);
  oneHot(data.labels, data.classes, hard.subarray(0, data.count * data.classes));

  const start = performance.now();
  const teacherOut = await outputs(engine, teacher, inputs, data.features);
  const teacherSeconds = (performance.now() - start) / 1000;
  if (teacherOut.width !== data.classes) throw new Error(`distill: the teacher gives ${teacherOut.width} outputs per row for ${data.classes} classes`);

  // fit needs a label per row; the unlabelled rows' 0 is never used (the loss reads `hard`).
  const labels = new Uint32Array(count);
  labels.set(Array.from(data.labels));
  const result = await fit(engine, student, optimizer, { inputs, labels, count, features: data.features, classes: data.classes }, {
    ...options,
    lossFn: (output, _targets, batch) => {
      const teacherLogits = engine.tensor(takeRows(teacherOut.values, data.classes, batch.indices), output.shape, 'distill.teacher');
      const hardTargets = engine.tensor(takeRows(hard, data.classes, batch.indices), output.shape, 'distill.targets');
      return distillationLoss(output, teacherLogits, hardTargets, options);
    },
  });
  return { ...result, teacherSeconds };
}
