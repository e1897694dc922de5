// What the demo pages share: query parameters, element access, progress lines for the headless
// runner, the error box, Fashion-MNIST fetching, and a small canvas line chart.

export const params = new URLSearchParams(location.search);
export const headless = params.get('headless') === '1';

declare global {
  interface Window {
    __result?: object;
    __error?: string;
  }
}

/** An integer query parameter of at least `min` (default 1), or `fallback` when absent. */
export function intParam(name: string, fallback: number, min = 1): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new Error(`query parameter ${name}=${raw} must be an integer of at least ${min}`);
  return v;
}

/** A number query parameter that passes `check` (described by `what` in the error; default: a positive finite number), or `fallback` when absent. */
export function numberParam(name: string, fallback: number, check: (v: number) => boolean = (v) => v > 0 && Number.isFinite(v), what = 'a positive number'): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const v = Number(raw);
  if (!check(v)) throw new Error(`query parameter ${name}=${raw} must be ${what}`);
  return v;
}

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing element #${id}`);
  return el as T;
}

export function setText(id: string, text: string): void {
  $(id).textContent = text;
}

export function status(text: string): void {
  setText('status', text);
}

/** A progress line: scripts/page-runner.mjs echoes console lines starting with [progress]. */
export function log(text: string): void {
  console.log(`[progress] ${text}`);
}

/** A fetcher of the files the static server serves under /data/<folder>/ (scripts/serve.mjs). */
export function dataFetcher(folder: string): (file: string) => Promise<Uint8Array> {
  return async (file) => {
    const res = await fetch(`/data/${folder}/${file}`);
    if (!res.ok) throw new Error(`fetching /data/${folder}/${file}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
}

export const fetchBytes = dataFetcher('fashion-mnist');

/** Shows the error on the page and reports it to the headless runner (first error only). */
export function fail(e: unknown): void {
  const message = e instanceof Error ? `${e.message}${e.stack && !headless ? `\n\n${e.stack}` : ''}` : String(e);
  if (window.__error !== undefined) return;
  window.__error = e instanceof Error ? e.message : String(e);
  const box = $('error');
  box.textContent = `Error: ${message}`;
  box.classList.add('shown');
  status('Failed.');
  console.error('[error] ' + window.__error);
}

/** Reports the page's result to the headless runner (window.__result and a [result] line). */
export function finish(result: object): void {
  window.__result = result;
  console.log('[result] ' + JSON.stringify(result));
}

/** Runs the page's main function, routing every failure to `fail`. */
export function run(main: () => Promise<void>): void {
  window.addEventListener('unhandledrejection', (ev) => fail(ev.reason));
  if (headless) document.body.classList.add('headless');
  main().catch(fail);
}

// ---- summaries ----------------------------------------------------------------------------

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** The sample standard deviation (n - 1), 0 for fewer than two values. */
export const std = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
export const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;
/** The number of values in some tensors (a model's parameters). */
export const countValues = (ts: Iterable<{ size: number }>) => [...ts].reduce((n, t) => n + t.size, 0);

/** A results table: a caption, a header row, and rows of cells (numbers to 4 decimals unless integers; null as a dash). */
export function resultTable(caption: string, head: string[], rows: (string | number | null)[][]): HTMLTableElement {
  const t = document.createElement('table');
  t.className = 'results';
  const c = document.createElement('caption');
  c.textContent = caption;
  t.append(c);
  for (const [i, cells] of [head, ...rows].entries()) {
    const tr = document.createElement('tr');
    for (const v of cells) {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      td.textContent = v === null ? '–' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v;
      tr.append(td);
    }
    t.append(tr);
  }
  return t;
}

// ---- charts -------------------------------------------------------------------------------

export interface Series {
  points: [number, number][];
  color: string;
  /** Shown in the legend (when the chart has more than one series) and by the last point. */
  label?: string;
  dots?: boolean;
  /** Half-widths of error bars, one per point (the spread over seeds). */
  errors?: number[];
}

export interface Chart {
  series: Series[];
  /** The x axis's start (default 0; must be positive on a log axis). */
  xMin?: number;
  xMax: number;
  /** A logarithmic x axis (default linear). */
  xLog?: boolean;
  /** Ticks at these x values with these labels, instead of evenly spaced numbers. */
  xTicks?: { x: number; label: string }[];
  yMin: number;
  yMax: number;
  xLabel: string;
  yFormat: (v: number) => string;
}

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm >= 5 ? 10 : norm >= 2 ? 5 : norm >= 1 ? 2 : 1) * mag;
}

export function drawChart(canvas: HTMLCanvasElement, c: Chart): void {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 440;
  const h = canvas.clientHeight || 240;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  if (!g) return;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 48;
  const right = 12;
  const top = 10;
  const bottom = 34;
  const pw = w - left - right;
  const ph = h - top - bottom;
  const xMin = c.xMin ?? 0;
  const ax = (x: number) => (c.xLog ? Math.log(x) : x);
  const sx = (x: number) => left + ((ax(x) - ax(xMin)) / (ax(c.xMax) - ax(xMin))) * pw;
  const sy = (y: number) => top + (1 - (y - c.yMin) / (c.yMax - c.yMin)) * ph;

  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  // Horizontal grid lines with y labels.
  const yStep = niceStep(c.yMax - c.yMin, 5);
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let y = Math.ceil(c.yMin / yStep) * yStep; y <= c.yMax + 1e-9; y += yStep) {
    g.strokeStyle = '#eef0f3';
    g.beginPath();
    g.moveTo(left, Math.round(sy(y)) + 0.5);
    g.lineTo(left + pw, Math.round(sy(y)) + 0.5);
    g.stroke();
    g.fillStyle = '#7b8794';
    g.fillText(c.yFormat(y), left - 6, sy(y));
  }
  // X ticks.
  const xStep = Math.max(niceStep(c.xMax - xMin, 6), c.xMax - xMin <= 1 ? 0.25 : 1);
  const ticks = c.xTicks ?? Array.from({ length: Math.floor((c.xMax - xMin) / xStep + 1e-9) + 1 }, (_, i) => xMin + i * xStep).map((x) => ({ x, label: Number.isInteger(x) ? String(x) : x.toFixed(2) }));
  g.textAlign = 'center';
  g.textBaseline = 'top';
  g.fillStyle = '#7b8794';
  for (const { x, label } of ticks) g.fillText(label, sx(x), top + ph + 5);
  g.fillText(c.xLabel, left + pw / 2, top + ph + 19);
  // Axes.
  g.strokeStyle = '#9aa5b1';
  g.beginPath();
  g.moveTo(left + 0.5, top);
  g.lineTo(left + 0.5, top + ph + 0.5);
  g.lineTo(left + pw, top + ph + 0.5);
  g.stroke();
  const drawn = c.series.filter((s) => s.points.length > 0);
  if (drawn.length === 0) {
    g.fillStyle = '#9aa5b1';
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText('waiting for data…', left + pw / 2, top + ph / 2);
    return;
  }
  for (const s of drawn) {
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.lineJoin = 'round';
    g.beginPath();
    s.points.forEach(([x, y], i) => (i === 0 ? g.moveTo(sx(x), sy(y)) : g.lineTo(sx(x), sy(y))));
    g.stroke();
    g.lineWidth = 1;
    s.errors?.forEach((e, i) => {
      const [x, y] = s.points[i]!;
      g.beginPath();
      g.moveTo(sx(x), sy(y - e));
      g.lineTo(sx(x), sy(y + e));
      g.moveTo(sx(x) - 3, sy(y - e));
      g.lineTo(sx(x) + 3, sy(y - e));
      g.moveTo(sx(x) - 3, sy(y + e));
      g.lineTo(sx(x) + 3, sy(y + e));
      g.stroke();
    });
    if (!s.dots) continue;
    g.fillStyle = s.color;
    for (const [x, y] of s.points) {
      g.beginPath();
      g.arc(sx(x), sy(y), 3, 0, Math.PI * 2);
      g.fill();
    }
    const [lx, ly] = s.points[s.points.length - 1]!;
    const atRight = sx(lx) > left + pw * 0.8;
    g.fillStyle = '#1f2933';
    g.textAlign = atRight ? 'right' : 'left';
    g.textBaseline = 'bottom';
    g.fillText(c.yFormat(ly), sx(lx) + (atRight ? -6 : 6), sy(ly) - 4);
  }
  const labelled = c.series.filter((s) => s.label);
  if (labelled.length > 1) {
    // Legend at the bottom right, on a translucent box so that it stays readable over the lines.
    const width = 26 + Math.max(...labelled.map((s) => g.measureText(s.label!).width));
    const x = left + pw - width - 4;
    let y = top + ph - 15 * labelled.length - 2;
    g.fillStyle = 'rgba(255, 255, 255, 0.85)';
    g.fillRect(x - 4, y - 4, width + 8, 15 * labelled.length + 4);
    g.textAlign = 'left';
    g.textBaseline = 'middle';
    for (const s of labelled) {
      y += 7;
      g.fillStyle = s.color;
      g.fillRect(x, y - 2, 14, 4);
      g.fillStyle = '#3e4c59';
      g.fillText(s.label!, x + 20, y);
      y += 8;
    }
  }
}
