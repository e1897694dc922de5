// Compute pipelines, cached per kernel and `override` constants and built asynchronously
// (createComputePipelineAsync): recording a dispatch never waits for a compile; the command
// queue awaits the pipeline when it submits. A compile error names the kernel and the line.
import { compilationError, type Constants, type Kernel } from './kernel.js';

export interface PipelineEntry {
  promise: Promise<GPUComputePipeline>;
  /** Set once compiled, so that a submit with every pipeline ready does not await. */
  pipeline: GPUComputePipeline | null;
}

export class PipelineCache {
  private readonly modules = new Map<Kernel, GPUShaderModule>();
  private readonly layouts = new Map<Kernel, GPUPipelineLayout>();
  private readonly pipelines = new Map<string, PipelineEntry>();

  constructor(
    private readonly device: GPUDevice,
    private readonly debug: () => boolean,
  ) {}

  get(k: Kernel, constants: Constants): PipelineEntry {
    const key = `${k.name}${JSON.stringify(Object.entries(constants).sort())}`;
    let entry = this.pipelines.get(key);
    if (entry) return entry;
    const values = k.pipelineConstants(constants);
    let module = this.modules.get(k);
    let checked: Promise<void> = Promise.resolve();
    if (!module) {
      if (this.debug()) console.log(`[webgpu-train] compiling ${k.name}\n${k.source}`);
      // Compilation errors are reported through getCompilationInfo (with the line), so keep
      // them out of the device's uncaptured-error event.
      this.device.pushErrorScope('validation');
      module = this.device.createShaderModule({ label: k.name, code: k.source });
      const scope = this.device.popErrorScope();
      this.modules.set(k, module);
      checked = Promise.all([module.getCompilationInfo(), scope]).then(([info, scopeError]) => {
        const error = compilationError(k, info);
        if (error) throw error;
        if (scopeError) throw new Error(`kernel ${k.name}: shader module creation failed: ${scopeError.message}`);
      });
    }
    let layout = this.layouts.get(k);
    if (!layout) {
      const bindGroupLayout = this.device.createBindGroupLayout({ label: `${k.name}.bindings`, entries: k.bindGroupLayoutEntries() });
      layout = this.device.createPipelineLayout({ label: `${k.name}.layout`, bindGroupLayouts: [bindGroupLayout] });
      this.layouts.set(k, layout);
    }
    const created = checked.then(() =>
      this.device.createComputePipelineAsync({
        label: `${k.name}${Object.keys(values).length ? ' ' + JSON.stringify(values) : ''}`,
        layout,
        compute: { module, entryPoint: k.entryPoint, constants: values },
      }),
    );
    const promise = created.then(
      (p) => {
        entry!.pipeline = p;
        return p;
      },
      (e: unknown) => {
        throw e instanceof Error && e.message.startsWith(`kernel ${k.name}`)
          ? e
          : new Error(`kernel ${k.name}: pipeline creation failed (${JSON.stringify(values)}): ${(e as Error).message}`);
      },
    );
    promise.catch(() => undefined); // reported when the pipeline is awaited in flush
    entry = { promise, pipeline: null };
    this.pipelines.set(key, entry);
    return entry;
  }
}
