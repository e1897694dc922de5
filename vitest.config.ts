import { defineConfig, type Plugin } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';
// @ts-expect-error plain ESM helper without type declarations
import { launchOptions } from './scripts/chromium.mjs';
import { linkWgsl } from './scripts/wgsl-import.mjs';

// WGSL files are imported as text with their #import lines resolved, as in the esbuild builds.
const wgsl: Plugin = {
  name: 'wgsl-import',
  enforce: 'pre',
  load(id) {
    if (!id.endsWith('.wgsl')) return null;
    const { code, files } = linkWgsl(id);
    for (const f of files.slice(1)) this.addWatchFile(f);
    return `export default ${JSON.stringify(code)};`;
  },
};

export default defineConfig({
  plugins: [wgsl],
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['tests/node/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['tests/browser/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({ launchOptions: launchOptions() }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
      {
        extends: true,
        test: {
          // End-to-end: builds and serves the demos and trains in headless Chromium (scripts/headless.mjs).
          name: 'e2e',
          include: ['tests/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 1_200_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
