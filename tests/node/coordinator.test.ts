// The federated coordinator at the protocol level, with real sockets: tests/node/coordinator-run.ts
// runs each group of scenarios in a child Node process on Dawn (the Vulkan loader reads its
// environment only when a process starts) and prints what it measured as one line of JSON, which
// these tests check. The restart group SIGKILLs a coordinator in the middle of a round and starts
// another on its store.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleNodeScript, dawnEnv, ROOT, SWIFTSHADER_ICD } from './bundle.js';

const skip = process.env.WEBGPU_ADAPTER !== 'gpu' && !existsSync(SWIFTSHADER_ICD);
if (skip) console.warn(`coordinator.test.ts: skipped: ${SWIFTSHADER_ICD} (chromium's SwiftShader Vulkan driver) is missing; set WEBGPU_ADAPTER=gpu to use a real GPU`);

const dir = mkdtempSync(join(tmpdir(), 'coordinator-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let script: string;
beforeAll(async () => {
  if (!skip) script = await bundleNodeScript('coordinator-run');
});

/**
 * Runs a scenario of coordinator-run.ts in a child process (its stores in `options.dir`, default a
 * fresh folder) and resolves with its line of JSON; with `kill`, SIGKILLs the child as soon as the
 * line comes (restart-serve prints it mid-round).
 */
function runScenario<T>(scenario: string, options: { dir?: string; kill?: boolean } = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, scenario, options.dir ?? mkdtempSync(join(dir, `${scenario}-`))], { cwd: ROOT, env: dawnEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let result: (T & { ok: boolean; error?: string }) | null = null;
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n').slice(0, -1).find((l) => l.startsWith('{'));
      if (result || line === undefined) return;
      result = JSON.parse(line) as T & { ok: boolean; error?: string };
      if (options.kill) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const context = `${scenario}: exit ${code}${signal ? ` (${signal})` : ''}\nstdout: ${out.slice(-4000)}\nstderr: ${err.slice(-4000)}`;
      if (!result) return reject(new Error(`printed no JSON result; ${context}`));
      if (!result.ok) return reject(new Error(`failed: ${result.error}; ${context}`));
      if (options.kill ? signal !== 'SIGKILL' : code !== 0) return reject(new Error(`ended unexpectedly; ${context}`));
      resolve(result);
    });
  });
}

interface RoundSummary {
  sampled: string[];
  accepted: string[];
  dropped: string[];
  aggregated: boolean;
}

/** The global weights after a round against the float64 weighted mean of the clients' own deltas. */
interface Exactness {
  maxError: number;
  tolerance: number;
}

interface StatusJson {
  round: number;
  secure: boolean;
  rounds: { round: number; sampled: number; accepted: number; dropped: number; aggregated: boolean; frameBytesDown: number; frameBytesUp: number }[];
  maskedPreview: Record<string, string>;
}

interface RoundsResult {
  secure: RoundsCase;
  plain: RoundsCase;
}
interface RoundsCase extends Exactness {
  accepted: string[];
  aggregated: boolean;
  largestDelta: number;
  received: Record<string, string[]>;
  status: StatusJson;
  statusText: string;
  plainPreviews: string[];
  plainValues: string[];
}

interface DropoutCase extends Exactness {
  first: RoundSummary;
  second: RoundSummary;
  connects: Record<string, number>;
  leaverReceived: string[];
  leaverFits: number[];
  mostConcurrentFits: number;
  log: string[];
}

interface AdmissionResult {
  door: {
    refused: Record<string, { error: string | null; received: string[] }>;
    otherModel: { received: string[]; reason: string | null; closedWith: number };
    noHello: { received: string[]; closedWith: number };
    big: { welcomed: boolean; closedWith: number; received: string[] };
    round: RoundSummary;
    goodReceived: string[][];
    connected: string[];
    log: string[];
  };
  frames: { eager: string; late: string; outsider: string; rejections: string[]; round: RoundSummary; maxError: number; outsiderReceived: string[] };
}

interface SavedState {
  round: number;
  weights: string;
  strategyRound: number;
  strategyTensors: Record<string, string>;
}

const sorted = (ids: readonly string[]) => [...ids].sort();

interface DpRound {
  accepted: string[];
  norms: number[];
  maxError: number;
  tolerance: number;
  epsilon: number | null;
  referenceEpsilon: number;
}

describe.skipIf(skip)('Coordinator: settings', () => {
  it('refuses a target below what a round needs, over-selection below 1, no deadline, and a strategy that needs each update under secure aggregation', async () => {
    const r = await runScenario<Record<string, string | null>>('settings');
    expect(r.target).toContain('Coordinator.start: target 1 must be an integer >= the 2 reports a round needs');
    expect(r.overselect).toContain('Coordinator.start: overselect 0.5 must be >= 1');
    expect(r.deadline).toContain('Coordinator.start: roundDeadlineMs 0 must be > 0');
    expect(r.median).toContain("Coordinator.start: FedMedian needs each client's update; secure aggregation gives the server only their sum");
  }, 90_000);
});

describe.skipIf(skip)('Coordinator: 8-bit updates', () => {
  let r: { accepted: string[]; maxError: number; step: number; received: string[][] };
  beforeAll(async () => {
    r = await runScenario<typeof r>('quantised');
  }, 90_000);

  it('travel as codes and scales and aggregate to the mean of the f32 deltas within the codes\' step', () => {
    expect(sorted(r.accepted)).toEqual(['c0', 'c1', 'c2']);
    expect(r.maxError).toBeLessThanOrEqual(r.step);
    expect(r.maxError).toBeGreaterThan(0);
    for (const frames of r.received) expect(frames).toEqual(['welcome', 'round']);
  });
});

describe.skipIf(skip)('Coordinator: DP-FedAvg under secure aggregation', () => {
  let r: { exact: DpRound; noised: DpRound };
  beforeAll(async () => {
    r = await runScenario<typeof r>('dp');
  }, 90_000);

  it('the clients clip to the round\'s norm before masking: the round adds the mean of the clipped deltas over E', () => {
    expect(sorted(r.exact.accepted)).toEqual(['c0', 'c1', 'c2']);
    // The set-up must clip: every delta is longer than the clip norm.
    for (const n of r.exact.norms) expect(n).toBeGreaterThan(0.02);
    expect(r.exact.maxError).toBeLessThanOrEqual(r.exact.tolerance);
    // No noise, no privacy: epsilon is Infinity (null once through JSON).
    expect(r.exact.epsilon).toBeNull();
  });

  it('with noise, the round is accounted as one of multiplier z over the full cohort, and the noised result moved away from the exact mean', () => {
    expect(sorted(r.noised.accepted)).toEqual(['c0', 'c1', 'c2']);
    expect(r.noised.epsilon).toBeCloseTo(r.noised.referenceEpsilon, 9);
    expect(Number.isFinite(r.noised.epsilon)).toBe(true);
    expect(r.noised.epsilon).toBeGreaterThan(0);
    expect(r.noised.maxError).toBeGreaterThan(10 * r.noised.tolerance);
  });
});

describe.skipIf(skip)('Coordinator: rounds over WebSockets', () => {
  let r: RoundsResult;
  beforeAll(async () => {
    r = await runScenario<RoundsResult>('rounds');
  }, 90_000);

  it('aggregates a secure round to the weighted mean of the clients’ own deltas, within the quantisation error', () => {
    expect(sorted(r.secure.accepted)).toEqual(['c0', 'c1', 'c2']);
    expect(r.secure.aggregated).toBe(true);
    // Deltas inside the clipping range, so that only quantisation separates the sum from the float64 one.
    expect(r.secure.largestDelta).toBeLessThan(1);
    expect(r.secure.maxError).toBeLessThanOrEqual(r.secure.tolerance);
    for (const frames of Object.values(r.secure.received)) expect(frames).toEqual(['welcome', 'round', 'secagg:AdvertiseKeys', 'secagg:ShareKeys', 'secagg:Unmasking']);
  });

  it('aggregates a plain round to the same mean within f32 rounding', () => {
    expect(sorted(r.plain.accepted)).toEqual(['c0', 'c1', 'c2']);
    expect(r.plain.aggregated).toBe(true);
    expect(r.plain.maxError).toBeLessThanOrEqual(r.plain.tolerance);
    for (const frames of Object.values(r.plain.received)) expect(frames).toEqual(['welcome', 'round']);
  });

  it('/status lists the rounds and the masked previews of secure ones, and no client’s plain update', () => {
    for (const c of [r.secure, r.plain]) {
      expect(c.status.round).toBe(1);
      expect(c.status.rounds).toEqual([expect.objectContaining({ round: 1, sampled: 3, accepted: 3, dropped: 0, aggregated: true })]);
      expect(c.status.rounds[0]!.frameBytesDown).toBeGreaterThan(0);
      expect(c.status.rounds[0]!.frameBytesUp).toBeGreaterThan(0);
      for (const leak of [...c.plainPreviews, ...c.plainValues]) expect(c.statusText).not.toContain(leak);
    }
    expect(r.secure.status.secure).toBe(true);
    expect(sorted(Object.keys(r.secure.status.maskedPreview))).toEqual(['c0', 'c1', 'c2']);
    for (const preview of Object.values(r.secure.status.maskedPreview)) expect(preview).toMatch(/^([0-9a-f]{2} ){15}[0-9a-f]{2}$/);
    expect(r.plain.status.maskedPreview).toEqual({});
  });
});

describe.skipIf(skip)('Coordinator: a client dropping mid-round', () => {
  let r: { secure: DropoutCase; plain: DropoutCase };
  beforeAll(async () => {
    r = await runScenario<typeof r>('dropout');
  }, 90_000);

  it.each(['secure', 'plain'] as const)('%s: the round completes with the others’ mean, and the client is back the next round after reconnecting', (mode) => {
    const c = r[mode];
    expect(c.first.dropped).toEqual(['c2']);
    expect(sorted(c.first.accepted)).toEqual(['c0', 'c1', 'c3']);
    expect(c.first.aggregated).toBe(true);
    expect(c.maxError).toBeLessThanOrEqual(c.tolerance);
    expect(c.log).toContain('client c2 disconnected');
    // Secure: it had shared its keys, so its masks were removed through its rebuilt key.
    expect(c.leaverReceived.slice(0, mode === 'secure' ? 4 : 2)).toEqual(mode === 'secure' ? ['welcome', 'round', 'secagg:AdvertiseKeys', 'secagg:ShareKeys'] : ['welcome', 'round']);
    expect(c.connects).toEqual({ c0: 1, c1: 1, c2: 2, c3: 1 });
    expect(sorted(c.second.accepted)).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(c.second.aggregated).toBe(true);
    // The dropped connection was still training round 1; the new one trained round 2 only after it.
    expect(c.leaverFits).toEqual([1, 2]);
    expect(c.mostConcurrentFits).toBe(1);
  });
});

describe.skipIf(skip)('Coordinator: admission and frames that do not belong', () => {
  let r: AdmissionResult;
  beforeAll(async () => {
    r = await runScenario<AdmissionResult>('admission');
  }, 90_000);

  it('refuses a wrong token, an unknown id and a revoked id alike, logs each reason, and sends them no round', () => {
    const { refused, log } = r.door;
    for (const what of ['wrong token', 'unknown id', 'revoked id']) {
      expect(refused[what]!.error, what).toMatch(/refused it: not admitted$/);
      expect(refused[what]!.received, what).toEqual(['error']);
    }
    expect(log).toEqual(expect.arrayContaining(['client wrong: rejected: auth: wrong token', 'client stranger: rejected: auth: unknown client', 'client revoked: rejected: auth: revoked']));
    expect(r.door.otherModel).toEqual({ received: ['error'], reason: 'it runs model another-model; this coordinator trains dense-4x3', closedWith: 1008 });
    expect(r.door.noHello).toEqual({ received: ['error'], closedWith: 1008 });
    expect(log).toContain('client unauthenticated: rejected: sent bye before hello');
    // The round that followed went to the admitted clients only.
    expect(sorted(r.door.round.sampled)).toEqual(['c0', 'c1', 'c2']);
    for (const frames of r.door.goodReceived) expect(frames).toEqual(['welcome', 'round']);
  });

  it('closes a connection that sends a frame over maxFrameBytes, and goes on serving the others', () => {
    expect(r.door.big).toEqual({ welcomed: true, closedWith: 1009, received: ['welcome'] });
    expect(r.door.log).toContain('client big disconnected');
    expect(r.door.connected).not.toContain('big');
    expect(sorted(r.door.round.accepted)).toEqual(['c0', 'c1', 'c2']);
    expect(r.door.round.aggregated).toBe(true);
  });

  it('rejects, with the reason, an update for another round, another model version, a second one, one from a client not selected, and a late one', () => {
    const { eager, late, outsider, rejections } = r.frames;
    expect(rejections).toEqual([
      `client ${eager}: rejected: a update frame for round 2; the coordinator is in round 1`,
      expect.stringMatching(new RegExp(`^client ${eager}: rejected: a update frame for model version \\d+; the model is version \\d+$`)),
      `client ${eager}: rejected: a second update frame this round`,
      `client ${outsider}: rejected: a update frame, but it is not in this round's update stage`,
      `client ${eager}: rejected: a update frame for round 1, which nothing is waiting for (late, or out of order)`,
    ]);
    expect(r.frames.outsiderReceived).toEqual(['welcome']);
    // Only the first valid update of each selected client counts, weighted by its examples.
    expect(sorted(r.frames.round.accepted)).toEqual(sorted([eager, late]));
    expect(r.frames.round.aggregated).toBe(true);
    expect(r.frames.maxError).toBeLessThan(1e-6);
  });
});

describe.skipIf(skip)('Coordinator: restart', () => {
  it('a coordinator SIGKILLed mid-round resumes on its store at that round, with bit-identical weights and FedAdam moments', async () => {
    const store = mkdtempSync(join(dir, 'restart-'));
    const served = await runScenario<{ state: SavedState }>('restart-serve', { dir: store, kill: true });
    expect(served.state.round).toBe(2);
    expect(Object.keys(served.state.strategyTensors).sort()).toEqual(['m', 'v']);
    const resumed = await runScenario<{ state: SavedState; next: { round: number; accepted: string[]; aggregated: boolean }; roundLog: number[]; log: string[] }>('restart-resume', { dir: store });
    expect(resumed.state).toEqual(served.state);
    expect(resumed.log[0]).toMatch(/resuming after round 2$/);
    expect(resumed.next).toEqual({ round: 3, accepted: expect.arrayContaining(['c0', 'c1', 'c2']), aggregated: true });
    expect(resumed.roundLog).toEqual([1, 2, 3]);
  }, 120_000);
});
