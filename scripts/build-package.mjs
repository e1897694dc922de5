// What `npm pack` runs first (the prepack script, followed by tsc -p tsconfig.build.json for the
// declarations): the library bundle alone, into an emptied dist/ so that no stale file from an
// earlier build ends up in the package. The demos are not part of the package.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLibrary } from '../esbuild.config.mjs';

rmSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'dist'), { recursive: true, force: true });
await buildLibrary();
