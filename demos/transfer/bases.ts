// The pretrained bases of the transfer demo and the models made from them: the scratch model (the
// base's architecture from random weights) and the transfer model (the base cut and frozen, a new
// head); and the settings every method of the comparison and the curves shares.
import { buildModel, loadPretrained, readPretrainedInfo, transfer, type Engine, type LayerSpec, type Sequential, type TransferModel } from '../../src/index.js';

export const PIXELS = 784;
export const BATCH = 20;
export const LORA = { rank: 4, alpha: 8, layers: ['conv2', 'fc1'] };
// Adam's rates: one for every method that trains whole layers, higher for the LoRA adapters (as PEFT).
export const LR = { scratch: 2e-3, head: 2e-3, finetune: 2e-3, lora: 5e-3, student: 2e-3 };
export const FINETUNE = { lr: LR.finetune, factor: 2.6, warmup: 5 };
/** The base file of the comparison and of pair (a), and the classes it was trained on. */
export const FASHION_SOURCE = { base: 'fashion-mnist-0-4-cnn', classes: [0, 1, 2, 3, 4] };
export const FASHION_TARGET = [5, 6, 7, 8, 9];

export async function fetchModel(name: string): Promise<Uint8Array> {
  const res = await fetch(`/models/${name}.safetensors`);
  if (!res.ok) throw new Error(`fetching /models/${name}.safetensors: HTTP ${res.status} (npm run pretrain writes the bases)`);
  return new Uint8Array(await res.arrayBuffer());
}

/** The architecture with its last layer (a dense layer) giving `classes` outputs: a base's CNN for a new task. */
export function withOutputs(architecture: readonly LayerSpec[], classes: number): LayerSpec[] {
  const last = architecture.at(-1);
  if (last?.type !== 'dense') throw new Error(`the base's last layer is ${last ? `a ${last.type}` : 'missing'}, not a dense layer to give ${classes} classes`);
  return [...architecture.slice(0, -1), { ...last, out: classes }];
}

/** The base file's CNN from random weights, with `classes` outputs: the scratch model. */
export function scratchModel(engine: Engine, base: Uint8Array, classes: number, seed: number): Sequential {
  return buildModel(engine, withOutputs(readPretrainedInfo(base).architecture, classes), { seed });
}

/** The base file's architecture with random weights, and the file's information. */
function randomCopy(engine: Engine, base: Uint8Array, seed: number) {
  const info = readPretrainedInfo(base);
  return { model: buildModel(engine, info.architecture, { seed }), info };
}

/**
 * A transfer model on a fresh copy of the pretrained base: its layers up to `cut`, frozen, and as
 * the new head fresh layers like the ones above the cut (so the last has `classes` outputs). With
 * `randomBase`, the base has the file's architecture but random weights (seeded by `seed`): the
 * control that tells what the pretrained weights add over random features.
 */
export function transferModel(engine: Engine, base: Uint8Array, cut: string, classes: number, seed: number, randomBase = false): TransferModel {
  const { model: copy, info } = randomBase ? randomCopy(engine, base, 900 + seed) : loadPretrained(engine, base);
  const names = copy.names();
  const at = names.indexOf(cut) + 1;
  if (at === 0 || at === names.length) {
    copy.dispose();
    throw new Error(`query parameter cut=${cut}: name a layer below the last (${names.slice(0, -1).join(', ')})`);
  }
  const fresh = buildModel(engine, withOutputs(info.architecture, classes), { seed });
  for (const [, layer] of [...copy.children().slice(at), ...fresh.children().slice(0, at)]) layer.dispose();
  return transfer(copy, { cutAfter: cut, head: fresh.children().slice(at) });
}
