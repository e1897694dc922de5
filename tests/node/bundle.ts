// Bundles a script of tests/node (with the library's sources, WGSL linked as text) into one ESM
// file for a child Node process (scripts/node-program.mjs): the Vulkan loader reads
// VK_ICD_FILENAMES and LD_LIBRARY_PATH only when a process starts, so Dawn's environment can only
// be chosen for a new process.
import { bundleNodeProgram, ROOT } from '../../scripts/node-program.mjs';

export { dawnEnv, SWIFTSHADER_ICD } from '../../scripts/node-program.mjs';
export { ROOT };

/** Bundles tests/node/<name>.ts and returns the output file's path. */
export function bundleNodeScript(name: string): Promise<string> {
  return bundleNodeProgram(`tests/node/${name}.ts`);
}
