// Types of scripts/page-runner.mjs, for the TypeScript files that import it.
import type { Page } from 'playwright';

export declare const repo: string;

/** Opens a demo page in headless Chromium and waits for its result; `after(page)` runs once it has reported. */
export declare function runPage<T = unknown>(options: {
  demo: string;
  query?: Record<string, string>;
  timeoutMs?: number;
  label?: string;
  screenshotName?: string;
  after?: (page: Page) => Promise<T>;
}): Promise<{ ok: boolean; outcome: Record<string, unknown>; extra: T | undefined; seconds: number }>;
