// Teach it your own classes: the person names 2 to 5 classes and draws a few examples of each;
// the drawings, made into 28x28 inputs as MNIST's digits were (drawing.ts), go through a
// pretrained CNN cut at a layer (the base, frozen) and a new dense head learns the classes from
// the cached features in a fixed number of Adam steps. Predictions update as the person draws.
// The head downloads as safetensors (class names, base and cut in the metadata) and loads back.
// With "fine-tune the top of the base", the base's top weighted layer trains too, at a lower rate,
// through the base (features cannot be cached then).
// Query parameters: base (mnist-cnn), cut (flatten or relu3), steps (100), lr (0.01),
// finetuneLr (0.001), headless=1. The page reports `{ ready: true, ... }` through window.__result
// once the base is loaded; window.__teach is the state the end-to-end test reads.
import {
  Adam,
  architectureDifferences,
  architectureOf,
  decodeSafetensors,
  Dense,
  Engine,
  fit,
  fitHead,
  loadPretrained,
  loadWeights,
  outputs,
  readPretrainedInfo,
  saveWeights,
  transfer,
  type ClassificationData,
  type LayerSpec,
  type TransferModel,
} from '../../src/index.js';
import { $, finish, intParam, log, numberParam, params, run, setText, status } from '../common/ui.js';
import { mnistInput, SIDE } from './drawing.js';

const BASES = ['mnist-cnn', 'fashion-mnist-cnn', 'fashion-mnist-0-4-cnn'];
// flatten first: measured ahead of relu3 on drawn classes with a few examples each (README).
const CUTS = ['flatten', 'relu3'];
const MIN_CLASSES = 2;
const MAX_CLASSES = 5;
const PIXELS = SIDE * SIDE;
const HEAD_KEY = 'webgpu-train.teach-head';
/** Seconds between predictions while a stroke is being drawn. */
const LIVE_MS = 150;
const PEN = 20;

const settings = {
  steps: intParam('steps', 100),
  lr: numberParam('lr', 0.01),
  finetuneLr: numberParam('finetuneLr', 0.001),
};

/** What a head file says besides its weights. */
interface HeadInfo {
  classes: string[];
  base: string;
  cut: string;
  /** The base's layers up to the cut: what the head's inputs come from. */
  architecture: LayerSpec[];
  /** The layers in the file: the head, and the base's top layer when it was fine-tuned. */
  layers: string[];
}

interface TeachState {
  base: string;
  cut: string;
  classes: { name: string; examples: number }[];
  trained: boolean;
  trainSeconds: number;
  featureSeconds: number;
  steps: number;
  /** Drawings changed so far, and the one the shown probabilities are for. */
  drawn: number;
  predicted: number;
  probabilities: number[] | null;
  notice: string;
  busy: boolean;
  /** The current drawing as the model sees it (null when blank). */
  input(): number[] | null;
  /** The current model's class probabilities for each 784-value input. */
  predict(inputs: number[][]): Promise<number[][]>;
}

declare global {
  interface Window {
    __teach?: TeachState;
  }
}

function softmax(row: ArrayLike<number>): number[] {
  const top = Math.max(...Array.from(row));
  const e = Array.from(row, (v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

function drawThumb(canvas: HTMLCanvasElement, input: Float32Array | null): void {
  const g = canvas.getContext('2d')!;
  const img = g.createImageData(SIDE, SIDE);
  for (let i = 0; i < PIXELS; i++) {
    const v = Math.round(255 * (input?.[i] ?? 0));
    img.data.set([v, v, v, 255], i * 4);
  }
  g.putImageData(img, 0, 0);
}

function thumb(input: Float32Array): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.className = 'thumb';
  c.width = c.height = SIDE;
  drawThumb(c, input);
  return c;
}

run(async () => {
  const engine = await Engine.create();
  const baseSelect = $<HTMLSelectElement>('base');
  const cutSelect = $<HTMLSelectElement>('cut');
  const finetuneBox = $<HTMLInputElement>('finetune');
  const trainButton = $<HTMLButtonElement>('train');
  const downloadButton = $<HTMLButtonElement>('download');
  for (const b of BASES) baseSelect.add(new Option(b, b));
  baseSelect.value = params.get('base') ?? BASES[0]!;
  cutSelect.value = params.get('cut') ?? CUTS[0]!;
  if (!BASES.includes(baseSelect.value)) throw new Error(`query parameter base=${params.get('base')}: choose one of ${BASES.join(', ')}`);
  if (!CUTS.includes(cutSelect.value)) throw new Error(`query parameter cut=${params.get('cut')}: choose one of ${CUTS.join(', ')}`);

  const classes: { name: string; examples: Float32Array[] }[] = [1, 2, 3].map((i) => ({ name: `class ${i}`, examples: [] }));
  let baseBytes = new Uint8Array(0);
  /** The trained model and what it was trained for (null until trained or loaded). */
  let current: { tm: TransferModel; classes: string[]; base: string; cut: string; layers: string[] } | null = null;

  const state: TeachState = {
    base: baseSelect.value,
    cut: cutSelect.value,
    classes: [],
    trained: false,
    trainSeconds: 0,
    featureSeconds: 0,
    steps: 0,
    drawn: 0,
    predicted: 0,
    probabilities: null,
    notice: '',
    busy: false,
    input: () => {
      const x = padInput();
      return x && Array.from(x);
    },
    predict: async (inputs) => {
      const logits = await classify(Float32Array.from(inputs.flat()));
      return inputs.map((_, r) => softmax(logits.subarray(r * current!.classes.length, (r + 1) * current!.classes.length)));
    },
  };
  window.__teach = state;

  /** A problem the person can fix (not a failure of the page): shown until the next action. */
  const notice = (text: string) => {
    state.notice = text;
    setText('notice', text);
    $('notice').classList.toggle('shown', text !== '');
  };
  /** Runs one action at a time; a thrown error becomes a notice. */
  const act = async (what: () => Promise<void>) => {
    if (state.busy) return;
    state.busy = true;
    notice('');
    render();
    try {
      await what();
    } catch (e) {
      notice(e instanceof Error ? e.message : String(e));
    } finally {
      state.busy = false;
      render();
    }
  };

  // ---- the model ------------------------------------------------------------------------------

  const loadBase = async (name: string) => {
    status(`Loading the base ${name}…`);
    const res = await fetch(`/models/${name}.safetensors`);
    if (!res.ok) throw new Error(`the base ${name} could not be fetched from /models/${name}.safetensors (HTTP ${res.status}); run npm run pretrain, or choose another base`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const info = readPretrainedInfo(bytes);
    baseBytes = bytes;
    dropModel();
    state.base = name;
    status(`Base ${name} loaded (trained on ${info.dataset}, test accuracy ${info.metrics['testAccuracy']?.toFixed(4) ?? '?'}): name your classes, draw examples and train.`);
  };

  const dropModel = () => {
    current?.tm.model.dispose();
    current = null;
    state.trained = false;
    state.probabilities = null;
  };

  /**
   * A transfer model built afresh from the base file (so that a fine-tuned fc1 never carries over
   * to the next head): the base's layers up to `cut`, frozen, and a new dense head for `k` classes.
   */
  const newTransferModel = async (cut: string, k: number): Promise<TransferModel> => {
    const source = loadPretrained(engine, baseBytes).model;
    const at = source.names().indexOf(cut);
    if (at < 0) {
      source.dispose();
      throw new Error(`the base has no layer ${cut} (layers: ${source.names().join(', ')})`);
    }
    for (const [, layer] of source.children().slice(at + 1)) layer.dispose();
    const { width } = await outputs(engine, source.upTo(cut), new Float32Array(PIXELS), PIXELS);
    return transfer(source, { cutAfter: cut, head: { head: new Dense(engine, width, k, { seed: 7 }) } });
  };

  /** The base's top weighted layer below the cut: what "fine-tune the top of the base" trains. */
  const topOfBase = (tm: TransferModel): string => {
    const weighted = architectureOf(tm.base).filter((s) => s.type === 'dense' || s.type === 'conv2d');
    return weighted[weighted.length - 1]!.name;
  };

  const classify = async (inputs: Float32Array): Promise<Float32Array> => {
    if (!current) throw new Error('no head yet: train one or load one');
    return (await outputs(engine, current.tm.model, inputs, PIXELS)).values;
  };

  const checkClasses = () => {
    if (classes.length < MIN_CLASSES) throw new Error(`give at least ${MIN_CLASSES} classes (there ${classes.length === 1 ? 'is 1' : `are ${classes.length}`})`);
    if (classes.length > MAX_CLASSES) throw new Error(`give at most ${MAX_CLASSES} classes (there are ${classes.length})`);
    const names = classes.map((c) => c.name.trim());
    const blank = names.findIndex((n) => n === '');
    if (blank >= 0) throw new Error(`class ${blank + 1} has no name`);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new Error(`two classes are named "${twice}": give each its own name`);
    const empty = classes.filter((c) => c.examples.length === 0).map((c) => `"${c.name}"`);
    if (empty.length) throw new Error(`${empty.length === 1 ? 'class' : 'classes'} ${empty.join(', ')} ${empty.length === 1 ? 'has' : 'have'} no drawings: draw at least one for each class`);
  };

  const trainHead = async () => {
    checkClasses();
    const k = classes.length;
    const names = classes.map((c) => c.name.trim());
    const finetuning = finetuneBox.checked;
    const inputs = Float32Array.from(classes.flatMap((c) => c.examples.flatMap((x) => Array.from(x))));
    const labels = classes.flatMap((c, i) => c.examples.map(() => i));
    const data: ClassificationData = { inputs, labels, count: labels.length, features: PIXELS, classes: k };
    dropModel();
    const tm = await newTransferModel(cutSelect.value, k);
    const layers = finetuning ? ['head', topOfBase(tm)] : ['head'];
    status(finetuning ? `Training the head and ${layers[1]} through the base…` : 'Training the head on cached features…');
    // Full batches: every step sees every example, so the number of steps fixes the work.
    const options = { epochs: settings.steps, batchSize: data.count, seed: 1, logEvery: settings.steps };
    let seconds: number;
    let featureSeconds = 0;
    if (finetuning) tm.model.unfreeze(layers[1]!);
    const optimizer = finetuning
      ? new Adam([{ params: tm.head.parameters().values(), lr: settings.lr }, { params: tm.model.select(layers[1]!), lr: settings.finetuneLr }], { lr: settings.lr })
      : new Adam(tm.head, { lr: settings.lr });
    try {
      if (finetuning) ({ seconds } = await fit(engine, tm.model, optimizer, data, options));
      else ({ seconds, featureSeconds } = await fitHead(engine, tm, optimizer, data, { ...options, cacheFeatures: true }));
    } catch (e) {
      tm.model.dispose();
      throw e;
    } finally {
      optimizer.dispose();
    }
    current = { tm, classes: names, base: state.base, cut: cutSelect.value, layers };
    Object.assign(state, { trained: true, trainSeconds: seconds, featureSeconds, steps: settings.steps });
    const how = finetuning ? `the head and ${layers[1]} through the base` : `the head on cached features (features ${featureSeconds.toFixed(2)} s)`;
    status(`Trained ${how}: ${settings.steps} Adam steps on ${data.count} drawings in ${seconds.toFixed(2)} s. Draw to see what it thinks.`);
    log(`trained ${how}: ${settings.steps} steps, ${data.count} drawings, ${seconds.toFixed(2)} s`);
  };

  const downloadHead = async () => {
    if (!current) throw new Error('no head to download yet: train one first');
    const info: HeadInfo = { classes: current.classes, base: current.base, cut: current.cut, architecture: architectureOf(current.tm.base), layers: current.layers };
    const bytes = await saveWeights(current.tm.model, { only: current.layers, metadata: { [HEAD_KEY]: JSON.stringify(info) } });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
    a.download = `teach-head-${current.base}-${current.classes.length}-classes.safetensors`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };

  const loadHead = async (file: File) => {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const raw = decodeSafetensors(bytes).metadata[HEAD_KEY];
    if (raw === undefined) throw new Error(`${file.name} is not a head saved by this page (no "${HEAD_KEY}" metadata)`);
    const info = JSON.parse(raw) as HeadInfo;
    if (info.base !== state.base) throw new Error(`${file.name} is a head for the base ${info.base}, but the page uses ${state.base}: choose ${info.base} as the base, then load the head again`);
    if (!CUTS.includes(info.cut)) throw new Error(`${file.name} cuts the base after ${info.cut}; this page cuts after ${CUTS.join(' or ')}`);
    if (info.classes.length < MIN_CLASSES || info.classes.length > MAX_CLASSES) throw new Error(`${file.name} has ${info.classes.length} classes; this page takes ${MIN_CLASSES} to ${MAX_CLASSES}`);
    dropModel();
    const tm = await newTransferModel(info.cut, info.classes.length);
    try {
      const diff = architectureDifferences(architectureOf(tm.base), info.architecture);
      if (diff.length) throw new Error(`${file.name} was trained on another ${info.base} (its layers up to ${info.cut} differ):\n  ${diff.join('\n  ')}`);
      loadWeights(tm.model, bytes, { strict: false });
    } catch (e) {
      tm.model.dispose();
      throw e;
    }
    current = { tm, classes: info.classes, base: info.base, cut: info.cut, layers: info.layers };
    cutSelect.value = info.cut;
    finetuneBox.checked = info.layers.length > 1;
    // The file's classes, keeping the drawings of those with the same name.
    const kept = new Map(classes.map((c) => [c.name.trim(), c.examples]));
    classes.splice(0, classes.length, ...info.classes.map((name) => ({ name, examples: kept.get(name) ?? [] })));
    state.trained = true;
    status(`Loaded ${file.name}: a head for ${info.classes.join(', ')} on ${info.base} cut after ${info.cut}${info.layers.length > 1 ? `, with ${info.layers[1]} fine-tuned` : ''}. Draw to see what it thinks.`);
  };

  // ---- drawing --------------------------------------------------------------------------------

  const pad = $<HTMLCanvasElement>('pad');
  const pen = pad.getContext('2d', { willReadFrequently: true })!;
  const clearPad = () => {
    pen.fillStyle = '#000';
    pen.fillRect(0, 0, pad.width, pad.height);
    state.drawn++;
    showInput();
    predictSoon();
  };
  const padInput = (): Float32Array | null => {
    const rgba = pen.getImageData(0, 0, pad.width, pad.height).data;
    const gray = new Float32Array(pad.width * pad.height);
    for (let i = 0; i < gray.length; i++) gray[i] = rgba[i * 4]! / 255;
    return mnistInput(gray, pad.width, pad.height);
  };
  const showInput = () => drawThumb($<HTMLCanvasElement>('seen'), padInput());

  // Live predictions: one at a time; a drawing changed meanwhile is predicted next.
  let predicting = false;
  const predictNow = async () => {
    if (predicting) return;
    predicting = true;
    try {
      while (state.predicted !== state.drawn) {
        const version = state.drawn;
        const x = padInput();
        const start = performance.now();
        state.probabilities = current && x ? softmax(await classify(x)) : null;
        if (state.probabilities) setText('latency', `prediction: ${Math.round(performance.now() - start)} ms`);
        state.predicted = version;
        showProbabilities();
      }
    } finally {
      predicting = false;
    }
  };
  const predictSoon = () => void predictNow().catch((e) => notice(e instanceof Error ? e.message : String(e)));

  let last: [number, number] | null = null;
  let lastPrediction = 0;
  const at = (e: PointerEvent): [number, number] => [(e.offsetX * pad.width) / pad.clientWidth, (e.offsetY * pad.height) / pad.clientHeight];
  pad.addEventListener('pointerdown', (e) => {
    pad.setPointerCapture(e.pointerId);
    last = at(e);
    stroke(last, last);
  });
  pad.addEventListener('pointermove', (e) => {
    if (!last) return;
    const next = at(e);
    stroke(last, next);
    last = next;
    if (performance.now() - lastPrediction > LIVE_MS) {
      lastPrediction = performance.now();
      showInput();
      predictSoon();
    }
  });
  const endStroke = () => {
    if (!last) return;
    last = null;
    showInput();
    predictSoon();
  };
  pad.addEventListener('pointerup', endStroke);
  pad.addEventListener('pointercancel', endStroke);
  const stroke = ([x0, y0]: [number, number], [x1, y1]: [number, number]) => {
    pen.strokeStyle = '#fff';
    pen.lineWidth = PEN;
    pen.lineCap = 'round';
    pen.lineJoin = 'round';
    pen.beginPath();
    pen.moveTo(x0, y0);
    pen.lineTo(x1, y1);
    pen.stroke();
    state.drawn++;
  };

  // ---- the page -------------------------------------------------------------------------------

  const showProbabilities = () => {
    const box = $('probs');
    box.replaceChildren();
    if (!current || !state.probabilities) return;
    const p = state.probabilities;
    const best = p.indexOf(Math.max(...p));
    current.classes.forEach((name, i) => {
      const row = document.createElement('div');
      row.className = `prob${i === best ? ' best' : ''}`;
      row.innerHTML = '<span></span><div class="track"><div class="fill"></div></div><span class="pct"></span>';
      row.children[0]!.textContent = name;
      (row.querySelector('.fill') as HTMLElement).style.width = `${(100 * p[i]!).toFixed(1)}%`;
      row.children[2]!.textContent = `${Math.round(100 * p[i]!)}%`;
      box.append(row);
    });
  };

  const render = () => {
    const list = $('classes');
    list.replaceChildren();
    classes.forEach((c, i) => {
      const div = document.createElement('div');
      div.className = 'class';
      const name = document.createElement('input');
      name.value = c.name;
      name.dataset['name'] = String(i);
      name.addEventListener('input', () => {
        c.name = name.value;
        state.classes[i]!.name = name.value;
      });
      const add = document.createElement('button');
      add.type = 'button';
      add.textContent = 'Add this drawing';
      add.dataset['add'] = String(i);
      add.addEventListener('click', () => {
        const x = padInput();
        if (!x) return notice('draw something on the black square first');
        notice('');
        c.examples.push(x);
        clearPad();
        render();
      });
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove class';
      remove.addEventListener('click', () => {
        classes.splice(i, 1);
        render();
      });
      const head = document.createElement('div');
      head.className = 'row';
      head.append(name, add, remove, `${c.examples.length} drawing${c.examples.length === 1 ? '' : 's'}`);
      const thumbs = document.createElement('div');
      thumbs.className = 'thumbs';
      thumbs.append(...c.examples.map(thumb));
      div.append(head, thumbs);
      list.append(div);
    });
    state.classes = classes.map((c) => ({ name: c.name, examples: c.examples.length }));
    state.cut = cutSelect.value;
    trainButton.disabled = state.busy;
    downloadButton.disabled = state.busy || !current;
    showProbabilities();
  };

  $('addClass').addEventListener('click', () => {
    if (classes.length >= MAX_CLASSES) return notice(`at most ${MAX_CLASSES} classes: remove one to add another`);
    notice('');
    classes.push({ name: `class ${classes.length + 1}`, examples: [] });
    render();
  });
  $('clear').addEventListener('click', clearPad);
  trainButton.addEventListener('click', () => void act(async () => {
    await trainHead();
    state.drawn++;
    await predictNow();
  }));
  downloadButton.addEventListener('click', () => void act(downloadHead));
  $<HTMLInputElement>('load').addEventListener('change', (e) => {
    const input = e.target as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    void act(async () => {
      await loadHead(file);
      state.drawn++;
      await predictNow();
    }).finally(() => (input.value = ''));
  });
  baseSelect.addEventListener('change', () =>
    void act(async () => {
      try {
        await loadBase(baseSelect.value);
      } catch (e) {
        baseSelect.value = state.base; // the page keeps the base it had
        throw e;
      }
    }),
  );
  cutSelect.addEventListener('change', () => {
    dropModel();
    status(`Features now come from ${cutSelect.value}: train again.`);
    render();
  });

  clearPad();
  await loadBase(baseSelect.value);
  render();
  finish({ ready: true, base: state.base, adapter: engine.adapterName, steps: settings.steps });
});
