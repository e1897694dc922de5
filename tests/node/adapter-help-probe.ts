// Run by tests/node/adapter-help.test.ts in a child process: Engine.create() with the `webgpu`
// package's entry point (argument `dawn`) or with no option (`none`). Prints one line of JSON:
// the error's message, or the adapter when an engine was made.
import { create } from 'webgpu';
import { Engine } from '../../src/index.js';

const mode = process.argv[2];
if (mode !== 'dawn' && mode !== 'none') throw new Error(`adapter-help-probe: expected the argument dawn or none, got ${mode}`);
let result: { error: string } | { adapter: string };
try {
  const engine = await Engine.create(mode === 'dawn' ? { gpu: create(['backend=vulkan']) } : {});
  result = { adapter: engine.adapterName };
} catch (e) {
  result = { error: e instanceof Error ? e.message : String(e) };
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
