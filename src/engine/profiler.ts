// Per-kernel GPU time. With the adapter's `timestamp-query` feature every dispatch gets its own
// compute pass with begin/end timestamps; without it, each dispatch is submitted alone and timed
// from submit to onSubmittedWorkDone (which includes submission overhead). The method used is
// named in the result.

export type ProfileMethod = 'timestamp-query' | 'submit-to-done';

export interface ProfileRow {
  kernel: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  /** Achieved GFLOP/s where the kernel's FLOPs are known, else null. */
  gflops: number | null;
}

export interface Profile {
  method: ProfileMethod;
  /** Sum of the kernels' GPU times. */
  totalMs: number;
  /** One row per kernel, most time first. */
  rows: ProfileRow[];
}

/** Collects timed dispatches while a profile is running. */
export class ProfileRecorder {
  private readonly byKernel = new Map<string, { calls: number; ms: number; flops: number; flopsKnown: boolean }>();
  /** Readbacks of timestamps still in flight. */
  readonly inFlight: Promise<void>[] = [];

  constructor(readonly method: ProfileMethod) {}

  add(kernel: string, ms: number, flops: number | undefined): void {
    const row = this.byKernel.get(kernel) ?? { calls: 0, ms: 0, flops: 0, flopsKnown: true };
    row.calls++;
    row.ms += ms;
    if (flops === undefined) row.flopsKnown = false;
    else row.flops += flops;
    this.byKernel.set(kernel, row);
  }

  async result(): Promise<Profile> {
    await Promise.all(this.inFlight);
    const rows = [...this.byKernel].map(([kernel, r]) => ({
      kernel,
      calls: r.calls,
      totalMs: r.ms,
      meanMs: r.ms / r.calls,
      gflops: r.flopsKnown && r.ms > 0 ? r.flops / (r.ms * 1e6) : null,
    }));
    rows.sort((a, b) => b.totalMs - a.totalMs);
    return { method: this.method, totalMs: rows.reduce((s, r) => s + r.totalMs, 0), rows };
  }
}

/** The profile as a fixed-width text table. */
export function formatProfile(profile: Profile): string {
  const header = ['kernel', 'calls', 'total ms', 'mean ms', 'GFLOP/s'];
  const body = profile.rows.map((r) => [r.kernel, String(r.calls), r.totalMs.toFixed(3), r.meanMs.toFixed(4), r.gflops === null ? '-' : r.gflops.toFixed(2)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `GPU time by kernel (${profile.method}), total ${profile.totalMs.toFixed(3)} ms`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ].join('\n');
}
