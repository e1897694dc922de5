// The errors Engine.create throws when there is no WebGPU or no adapter. Under Node they say
// what to set up (the `webgpu` package, and without a GPU the Vulkan loader's environment).
// Node is recognised by its globals, not by importing anything, so the engine stays browser-safe.

interface NodeGlobals {
  process?: { versions?: { node?: unknown }; env?: Record<string, string | undefined> };
}

function nodeProcess(): NodeGlobals['process'] | undefined {
  const p = (globalThis as NodeGlobals).process;
  return typeof p?.versions?.node === 'string' ? p : undefined;
}

const USE_DAWN =
  "In Node, pass `gpu: create(['backend=vulkan'])` from the `webgpu` package (npm install webgpu; import { create } from 'webgpu'), " +
  'and keep the object create() returns alive while its device is used: Dawn crashes when it is garbage-collected ' +
  '(the engine holds it when it is given as `gpu`; keep your own reference when you pass `device`).';

/** No `gpu` or `device` option and no navigator.gpu. */
export function noWebGpuMessage(): string {
  if (nodeProcess()) return `WebGPU is not available: Node has no navigator.gpu and no \`gpu\` or \`device\` option was given. ${USE_DAWN}`;
  return 'WebGPU is not available: navigator.gpu is missing (it needs a browser with WebGPU and a secure context such as http://localhost), and no `gpu` or `device` option was given';
}

/** requestAdapter() gave null; `gpuGiven`: the entry point came from the `gpu` option. */
export function noAdapterMessage(gpuGiven: boolean): string {
  const node = nodeProcess();
  if (!node) return 'WebGPU is available but no GPU adapter was found';
  const icd = node.env?.VK_ICD_FILENAMES;
  return [
    'WebGPU is available but no GPU adapter was found.',
    ...(gpuGiven ? [] : [USE_DAWN]),
    'Without a GPU, the Vulkan loader needs SwiftShader (from Debian\'s chromium package): set ' +
      'VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium before Node starts ' +
      '(the loader reads them once, at start), or install a real Vulkan driver.',
    ...(icd ? [`VK_ICD_FILENAMES is now ${icd}.`] : []),
  ].join(' ');
}
