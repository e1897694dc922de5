// Engine: owns the GPUDevice, the pipeline cache, the buffer pool and the list of recorded
// commands. Ops record dispatches synchronously; `flush()` waits for any pipeline still being
// compiled, encodes everything recorded into one command encoder and submits it. Reads flush.
import { noAdapterMessage, noWebGpuMessage } from './adapter-help.js';
import { compilationError, type Constants, type Kernel } from './kernel.js';
import { kernel as registeredKernel, type KernelName } from './kernels.js';
import { BufferPool, BufferUsage, type MemoryInfo } from './pool.js';
import { ProfileRecorder, type Profile } from './profiler.js';
import { tuneConv2d, tuneMatmul, type TuningResult } from './autotune.js';
import { randomNormal, randomUniform } from './random.js';
import { Parameter, shapeSize, shapeString, Tensor, type Shape, type Storage } from './tensor.js';

export interface EngineOptions {
  /** Use this device instead of requesting one (for example one made by the `webgpu` npm package). */
  device?: GPUDevice;
  /** The GPU entry point; defaults to `navigator.gpu`. In Node pass `create([...])` from the `webgpu` package. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /** Log every compiled shader and every dispatch to the console. */
  debug?: boolean;
  /** Time a few kernel configurations on this adapter at creation and use the fastest. */
  autotune?: boolean;
}

export interface DispatchSpec {
  /** Tensor per binding name of the shader. */
  bindings: Record<string, Tensor>;
  /** Values per member of the shader's uniform struct. */
  uniforms?: Record<string, number>;
  /** Values for the shader's `override` constants. */
  constants?: Constants;
  /** Either a number of invocations along x (spread over a 2D grid past the per-dimension limit)... */
  threads?: number;
  /** ...or an explicit workgroup grid. */
  workgroups?: [number, number?, number?];
  /** Floating-point operations of the dispatch, where known, for the profiler's GFLOP/s. */
  flops?: number;
}

/** One recorded dispatch, as the trace and the profiler see it. */
export interface DispatchRecord {
  kernel: string;
  label: string;
  workgroups: [number, number, number];
}

interface PipelineEntry {
  promise: Promise<GPUComputePipeline>;
  pipeline: GPUComputePipeline | null;
}

type Command =
  | {
      kind: 'dispatch';
      kernel: Kernel;
      pipeline: PipelineEntry;
      resources: GPUBufferBinding[];
      /** The uniform struct's bytes, packed when the dispatch was recorded. */
      uniform: Uint8Array | null;
      workgroups: [number, number, number];
      label: string;
      flops: number | undefined;
    }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number; temporary: boolean };

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment's largest allowed value

export class Engine {
  readonly limits: GPUSupportedLimits;
  readonly adapterName: string;
  /**
   * The entry point and adapter the device came from (null when a device was given). Held for the
   * engine's lifetime: dawn.node (the `webgpu` package) tears down its instance when the GPU
   * object is garbage-collected, and the process then crashes on the next device call.
   */
  gpu: GPU | null = null;
  adapter: GPUAdapter | null = null;
  debug: boolean;
  /** Kernel configurations chosen by the autotuner, by kernel name (override constants). */
  readonly tuning = new Map<string, Constants>();
  /** Number of compute dispatches recorded since the engine was made. */
  dispatchCount = 0;
  private trace: DispatchRecord[] | null = null;
  private readonly pool: BufferPool;
  private readonly modules = new Map<Kernel, GPUShaderModule>();
  private readonly layouts = new Map<Kernel, GPUPipelineLayout>();
  private readonly pipelines = new Map<string, PipelineEntry>();
  private pending: Command[] = [];
  private readonly pendingBuffers = new Set<GPUBuffer>();
  private flushChain: Promise<void> = Promise.resolve();
  private uniformArena: GPUBuffer | null = null;
  private readonly readPool = new Map<number, GPUBuffer[]>();
  private readonly scopes: Set<Tensor>[] = [];
  private readonly labels: string[] = [];
  private lostError: Error | null = null;
  private readonly lostListeners: ((e: Error) => void)[] = [];
  private readonly lostPromise: Promise<never>;
  private gpuError: Error | null = null;
  private profiling: ProfileRecorder | null = null;
  private unusedBinding: Tensor | null = null;
  private seedCounter = 0x9e3779b9;

  private constructor(
    readonly device: GPUDevice,
    adapterName: string,
    debug: boolean,
  ) {
    this.limits = device.limits;
    this.adapterName = adapterName;
    this.debug = debug;
    this.pool = new BufferPool(device);
    this.lostPromise = device.lost.then((info) => {
      const error = new Error(`GPU device lost (${info.reason}): ${info.message || 'no message'}`);
      this.lostError = error;
      for (const l of this.lostListeners) l(error);
      throw error;
    });
    this.lostPromise.catch(() => undefined); // observed through lostError and onLost
    device.addEventListener?.('uncapturederror', (event) => {
      const e = (event as GPUUncapturedErrorEvent).error;
      this.gpuError ??= new Error(`WebGPU error: ${e.message}`);
    });
  }

  /** Acquires an adapter and a device (or wraps the given device) with the limits the kernels need. */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    if (options.device) {
      const info = (options.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
      return Engine.finish(new Engine(options.device, describeAdapter(info), options.debug ?? false), options);
    }
    const gpu = options.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    if (!gpu) throw new Error(noWebGpuMessage());
    const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined);
    if (!adapter) throw new Error(noAdapterMessage(options.gpu !== undefined));
    const wanted = [
      'maxStorageBufferBindingSize',
      'maxBufferSize',
      'maxStorageBuffersPerShaderStage',
      'maxComputeWorkgroupStorageSize',
      'maxComputeInvocationsPerWorkgroup',
      'maxComputeWorkgroupSizeX',
      'maxComputeWorkgroupSizeY',
      'maxComputeWorkgroupsPerDimension',
    ] as const;
    const requiredLimits: Record<string, number> = {};
    for (const k of wanted) requiredLimits[k] = adapter.limits[k];
    const requiredFeatures: GPUFeatureName[] = [];
    if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
    const device = await adapter.requestDevice({ label: 'webgpu-train', requiredLimits, requiredFeatures });
    const engine = new Engine(device, describeAdapter(adapter.info), options.debug ?? false);
    engine.gpu = gpu;
    engine.adapter = adapter;
    return Engine.finish(engine, options);
  }

  private static async finish(engine: Engine, options: EngineOptions): Promise<Engine> {
    if (options.autotune) await engine.autotune();
    return engine;
  }

  /** Times a few configurations of the matmul and conv2d kernels on this adapter and keeps the fastest. */
  async autotune(): Promise<TuningResult[]> {
    const results = [await tuneMatmul(this), await tuneConv2d(this)];
    for (const r of results) this.tuning.set(r.kernel, r.best);
    return results;
  }

  /** Called once if the device is lost; later calls into the engine throw the same error. */
  onLost(listener: (error: Error) => void): void {
    if (this.lostError) listener(this.lostError);
    else this.lostListeners.push(listener);
  }

  get lost(): boolean {
    return this.lostError !== null;
  }

  private assertUsable(): void {
    if (this.lostError) throw this.lostError;
  }

  // ---------------------------------------------------------------- tensors

  /** An uninitialised tensor from the pool (ops write every element before anything reads it). */
  empty(shape: Shape, name: string): Tensor {
    this.assertUsable();
    const bytes = shapeSize(shape) * 4;
    const max = this.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      throw new Error(`${name}: tensor of shape ${shapeString(shape)} needs ${bytes} bytes, more than the device's maxStorageBufferBindingSize (${max})`);
    }
    const storage: Storage = { buffer: this.pool.acquire(bytes, name), refs: 1 };
    return this.track(new Tensor(this, shape, storage, name));
  }

  tensor(data: ArrayLike<number>, shape: Shape, name = 'tensor'): Tensor {
    const n = shapeSize(shape);
    if (data.length !== n) throw new Error(`tensor ${name}: ${data.length} values do not fill shape ${shapeString(shape)} (${n} elements)`);
    const t = this.empty(shape, name);
    this.write(t, data instanceof Float32Array ? data : Float32Array.from(data));
    return t;
  }

  zeros(shape: Shape, name = 'zeros'): Tensor {
    return this.full(shape, 0, name);
  }

  full(shape: Shape, value: number, name = 'full'): Tensor {
    const t = this.empty(shape, name);
    this.dispatch('fill', { bindings: { out: t }, uniforms: { n: t.size, value }, threads: t.size });
    return t;
  }

  randn(shape: Shape, options: { seed?: number; mean?: number; std?: number; name?: string } = {}): Tensor {
    const seed = options.seed ?? this.nextSeed();
    return this.tensor(randomNormal(shapeSize(shape), seed, options.mean ?? 0, options.std ?? 1), shape, options.name ?? 'randn');
  }

  rand(shape: Shape, options: { seed?: number; low?: number; high?: number; name?: string } = {}): Tensor {
    const seed = options.seed ?? this.nextSeed();
    return this.tensor(randomUniform(shapeSize(shape), seed, options.low ?? 0, options.high ?? 1), shape, options.name ?? 'rand');
  }

  /** A small kept tensor to bind where a shader's binding goes unused (a switched-off option). */
  placeholder(): Tensor {
    if (!this.unusedBinding || this.unusedBinding.disposed) this.unusedBinding = this.keep(this.zeros([4], 'placeholder'));
    return this.unusedBinding;
  }

  /** A parameter: a kept tensor that optimizers update and that can be frozen. */
  parameter(data: ArrayLike<number>, shape: Shape, name: string): Parameter {
    const n = shapeSize(shape);
    if (data.length !== n) throw new Error(`parameter ${name}: ${data.length} values do not fill shape ${shapeString(shape)}`);
    const storage: Storage = { buffer: this.pool.acquire(n * 4, name), refs: 1 };
    const p = new Parameter(this, shape, storage, name);
    p.kept = true;
    this.write(p, data instanceof Float32Array ? data : Float32Array.from(data));
    return p;
  }

  /** A tensor sharing `source`'s elements with another shape. */
  /** A tensor sharing `source`'s elements from `offset` on (a multiple of 64) with another shape. */
  view(source: Tensor, shape: Shape, name = `${source.name}.view`, offset = 0): Tensor {
    source.assertAlive('view');
    if (offset % 64 !== 0 || offset < 0 || offset + shapeSize(shape) > source.size) {
      throw new Error(`view: ${shapeString(shape)} at element ${offset} does not fit in ${source.name} ${shapeString(source.shape)} (offsets are multiples of 64)`);
    }
    source.storage.refs++;
    return this.track(new Tensor(this, shape, source.storage, name, source.offset + offset));
  }

  /** Copies `src` into `dst` (same number of elements), in order with the recorded commands. */
  copy(src: Tensor, dst: Tensor): void {
    src.assertAlive('copy');
    dst.assertAlive('copy');
    if (src.size !== dst.size) throw new Error(`copy: ${src.name} ${shapeString(src.shape)} into ${dst.name} ${shapeString(dst.shape)}`);
    if (src.size === 0) return;
    this.record({ kind: 'copy', src: src.storage.buffer, srcOffset: src.offset * 4, dst: dst.storage.buffer, dstOffset: dst.offset * 4, size: src.size * 4, temporary: false });
  }

  /** Overwrites a tensor's values from the CPU, in order with the recorded commands. */
  write(t: Tensor, data: Float32Array): void {
    t.assertAlive('write');
    if (data.length !== t.size) throw new Error(`write: ${data.length} values for tensor ${t.name} ${shapeString(t.shape)}`);
    if (data.length === 0) return;
    const buffer = t.storage.buffer;
    if (!this.pendingBuffers.has(buffer)) {
      // No recorded command touches this buffer yet, so writing it now cannot overtake one.
      this.device.queue.writeBuffer(buffer, t.offset * 4, data.buffer, data.byteOffset, data.byteLength);
      return;
    }
    const staging = this.device.createBuffer({ label: `${t.name}.upload`, size: data.byteLength, usage: BufferUsage.COPY_SRC, mappedAtCreation: true });
    new Float32Array(staging.getMappedRange()).set(data);
    staging.unmap();
    this.record({ kind: 'copy', src: staging, srcOffset: 0, dst: buffer, dstOffset: t.offset * 4, size: data.byteLength, temporary: true });
  }

  async read(t: Tensor): Promise<Float32Array> {
    t.assertAlive('read');
    const bytes = t.size * 4;
    if (bytes === 0) return new Float32Array(0);
    const size = Math.ceil(bytes / 256) * 256;
    const staging = this.readPool.get(size)?.pop() ?? this.device.createBuffer({ label: `readback ${size}B`, size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    this.record({ kind: 'copy', src: t.storage.buffer, srcOffset: t.offset * 4, dst: staging, dstOffset: 0, size: bytes, temporary: false });
    await this.flush();
    await Promise.race([staging.mapAsync(0x1 /* GPUMapMode.READ */, 0, bytes), this.lostPromise]);
    const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
    staging.unmap();
    const list = this.readPool.get(size) ?? [];
    list.push(staging);
    this.readPool.set(size, list);
    this.throwGpuError();
    return out;
  }

  releaseStorage(storage: Storage): void {
    if (--storage.refs === 0) this.pool.release(storage.buffer);
  }

  memory(): MemoryInfo {
    return this.pool.memory();
  }

  /** Destroys pooled buffers that no tensor uses (after finishing recorded work). */
  async trim(): Promise<void> {
    await this.flush();
    this.pool.trim();
  }

  nextSeed(): number {
    this.seedCounter = (Math.imul(this.seedCounter ^ (this.seedCounter >>> 16), 0x45d9f3b) + 0x6b43a9b5) >>> 0;
    return this.seedCounter;
  }

  // ---------------------------------------------------------------- scopes

  private track(t: Tensor): Tensor {
    this.scopes[this.scopes.length - 1]?.add(t);
    return t;
  }

  /** Marks tensors as kept: no scope will dispose them. */
  keep<T extends Tensor>(t: T): T {
    t.kept = true;
    for (const s of this.scopes) s.delete(t);
    return t;
  }

  /**
   * Runs `fn` (sync or async) and then disposes every tensor made inside it, except kept
   * tensors and the tensors it returns (directly, or in an array, Map or plain object), which
   * pass to the enclosing scope. Intermediates stay alive across `await`s inside `fn`.
   */
  async scope<T>(fn: () => T | Promise<T>): Promise<T> {
    const made = new Set<Tensor>();
    this.scopes.push(made);
    const returned = new Set<Tensor>();
    try {
      const result = await fn();
      collectTensors(result, returned);
      return result;
    } finally {
      // Also when fn throws: everything it made (and did not keep) is freed.
      const i = this.scopes.lastIndexOf(made);
      if (i >= 0) this.scopes.splice(i, 1);
      const parent = this.scopes[this.scopes.length - 1];
      for (const t of made) {
        if (t.kept) continue;
        if (returned.has(t)) parent?.add(t);
        else t.dispose();
      }
    }
  }

  // ---------------------------------------------------------------- tracing and labels

  /** Runs `fn` with `label` added to the label of every dispatch it records. */
  withLabel<T>(label: string, fn: () => T): T {
    this.labels.push(label);
    try {
      return fn();
    } finally {
      this.labels.pop();
    }
  }

  /** Records every dispatch made while `fn` runs and returns them with fn's result. */
  traceDispatches<T>(fn: () => T): { result: T; dispatches: DispatchRecord[] } {
    const outer = this.trace;
    const mine: DispatchRecord[] = [];
    this.trace = mine;
    try {
      return { result: fn(), dispatches: mine };
    } finally {
      this.trace = outer;
      outer?.push(...mine);
    }
  }

  // ---------------------------------------------------------------- kernels

  /** Records one dispatch of a kernel (registered by name, or a Kernel of the caller's); bindings and uniforms are checked against the WGSL. */
  dispatch(kernel: KernelName | Kernel, spec: DispatchSpec): void {
    this.assertUsable();
    const k = typeof kernel === 'string' ? registeredKernel(kernel) : kernel;
    const name = k.name;
    const constants = spec.constants ?? {};
    const resources: GPUBufferBinding[] = [];
    const written = new Set<GPUBuffer>();
    const read = new Set<GPUBuffer>();
    for (const b of k.bindings) {
      if (b.kind === 'uniform') continue;
      const t = spec.bindings[b.name];
      if (!t) throw new Error(`kernel ${name}: binding ${b.name} was not given (needs: ${k.bindings.filter((x) => x.kind === 'storage').map((x) => x.name).join(', ')})`);
      t.assertAlive(name);
      const r = t.binding();
      const max = this.limits.maxStorageBufferBindingSize;
      if ((r.size ?? 0) > max) throw new Error(`kernel ${name}: ${b.name} = ${t.name} ${shapeString(t.shape)} is ${r.size} bytes, over maxStorageBufferBindingSize (${max})`);
      if ((r.size ?? 0) < b.stride) throw new Error(`kernel ${name}: ${b.name} = ${t.name} ${shapeString(t.shape)} is smaller than one element (${b.stride} bytes)`);
      (b.readOnly ? read : written).add(r.buffer);
      resources.push(r);
    }
    for (const key of Object.keys(spec.bindings)) {
      if (!k.bindings.some((b) => b.name === key)) throw new Error(`kernel ${name}: the shader has no binding named ${key}`);
    }
    for (const buffer of written) {
      if (read.has(buffer)) throw new Error(`kernel ${name}: buffer ${buffer.label} is bound both for reading and for writing`);
    }
    let uniform: Uint8Array | null = null;
    if (k.uniform) {
      if (!spec.uniforms) throw new Error(`kernel ${name}: uniform ${k.uniform.name} was not given`);
      uniform = new Uint8Array(k.uniform.size);
      k.packUniform(spec.uniforms, new DataView(uniform.buffer), 0);
    } else if (spec.uniforms) throw new Error(`kernel ${name}: the shader has no uniform buffer`);
    const workgroups = this.workgroupGrid(k, name, constants, spec);
    const context = this.labels.join(' ');
    const label = context ? `${name} ${context}` : name;
    this.dispatchCount++;
    this.trace?.push({ kernel: name, label, workgroups });
    if (this.debug) console.log(`[webgpu-train] dispatch ${label} ${JSON.stringify(constants)} workgroups=${workgroups.join('x')}`);
    if (workgroups[0] * workgroups[1] * workgroups[2] === 0) return;
    this.record({ kind: 'dispatch', kernel: k, pipeline: this.pipeline(k, constants), resources, uniform, workgroups, label, flops: spec.flops });
  }

  private workgroupGrid(k: Kernel, name: string, constants: Constants, spec: DispatchSpec): [number, number, number] {
    const maxPerDim = this.limits.maxComputeWorkgroupsPerDimension;
    if (spec.workgroups) {
      const [x, y = 1, z = 1] = spec.workgroups;
      if (x > maxPerDim || y > maxPerDim || z > maxPerDim) {
        throw new Error(`kernel ${name}: workgroup grid ${x}x${y}x${z} exceeds maxComputeWorkgroupsPerDimension (${maxPerDim})`);
      }
      return [x, y, z];
    }
    const threads = spec.threads ?? 0;
    const [wx] = k.workgroupSize(constants);
    const groups = Math.ceil(threads / wx);
    if (groups <= maxPerDim) return [groups, 1, 1];
    const y = Math.ceil(groups / maxPerDim);
    if (y > maxPerDim) throw new Error(`kernel ${name}: ${threads} invocations exceed the device's dispatch limits`);
    return [maxPerDim, y, 1];
  }

  private pipeline(k: Kernel, constants: Constants): PipelineEntry {
    const key = `${k.name}${JSON.stringify(Object.entries(constants).sort())}`;
    let entry = this.pipelines.get(key);
    if (entry) return entry;
    const values = k.pipelineConstants(constants);
    let module = this.modules.get(k);
    let checked: Promise<void> = Promise.resolve();
    if (!module) {
      if (this.debug) console.log(`[webgpu-train] compiling ${k.name}\n${k.source}`);
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
    const created = checked.then(() => this.device.createComputePipelineAsync({
      label: `${k.name}${Object.keys(values).length ? ' ' + JSON.stringify(values) : ''}`,
      layout,
      compute: { module, entryPoint: k.entryPoint, constants: values },
    }));
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

  private record(c: Command): void {
    this.pending.push(c);
    if (c.kind === 'dispatch') for (const r of c.resources) this.pendingBuffers.add(r.buffer);
    else {
      this.pendingBuffers.add(c.src);
      this.pendingBuffers.add(c.dst);
    }
  }

  /** Encodes every recorded command into one command buffer and submits it. */
  flush(): Promise<void> {
    const run = this.flushChain.then(() => this.submitRecorded());
    this.flushChain = run.catch(() => undefined);
    return run;
  }

  private async submitRecorded(): Promise<void> {
    this.assertUsable();
    this.throwGpuError();
    const commands = this.pending;
    if (commands.length === 0) return;
    this.pending = [];
    try {
      for (const c of commands) if (c.kind === 'dispatch' && !c.pipeline.pipeline) await c.pipeline.promise;
    } catch (e) {
      for (const c of commands) if (c.kind === 'copy' && c.temporary) c.src.destroy();
      if (this.pending.length === 0) this.pendingBuffers.clear();
      throw e;
    }
    const profiling = this.profiling;
    if (profiling?.method === 'submit-to-done') {
      // Without timestamp queries: each command in its own submit, timed until the GPU is done.
      for (const c of commands) {
        const start = performance.now();
        this.encodeAndSubmit([c], null);
        await this.device.queue.onSubmittedWorkDone();
        if (c.kind === 'dispatch') profiling.add(c.kernel.name, performance.now() - start, c.flops);
      }
    } else this.encodeAndSubmit(commands, profiling);
    if (this.pending.length === 0) this.pendingBuffers.clear();
  }

  /** Encodes commands whose pipelines are ready into one command buffer and submits it. */
  private encodeAndSubmit(commands: Command[], profiling: ProfileRecorder | null): void {
    const uniformCount = commands.filter((c) => c.kind === 'dispatch' && c.uniform).length;
    const arena = this.arena(uniformCount * UNIFORM_SLOT);
    const uniformBytes = new Uint8Array(Math.max(uniformCount, 1) * UNIFORM_SLOT);
    const dispatches = commands.filter((c) => c.kind === 'dispatch');
    const timestamps = profiling && dispatches.length ? this.device.createQuerySet({ label: 'profile timestamps', type: 'timestamp', count: 2 * dispatches.length }) : null;
    const encoder = this.device.createCommandEncoder({ label: 'webgpu-train step' });
    let pass: GPUComputePassEncoder | null = null;
    let slot = 0;
    let timed = 0;
    for (const c of commands) {
      if (c.kind === 'copy') {
        pass?.end();
        pass = null;
        encoder.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
        continue;
      }
      const entries: GPUBindGroupEntry[] = [];
      let r = 0;
      for (const b of c.kernel.bindings) {
        if (b.kind === 'uniform') {
          uniformBytes.set(c.uniform!, slot * UNIFORM_SLOT);
          entries.push({ binding: b.binding, resource: { buffer: arena!, offset: slot * UNIFORM_SLOT, size: b.size } });
          slot++;
        } else entries.push({ binding: b.binding, resource: c.resources[r++]! });
      }
      const pipeline = c.pipeline.pipeline!;
      const bindGroup = this.device.createBindGroup({ label: c.label, layout: pipeline.getBindGroupLayout(0), entries });
      if (timestamps) {
        // One pass per dispatch, so that its begin/end timestamps time this kernel alone.
        pass?.end();
        pass = encoder.beginComputePass({ label: c.label, timestampWrites: { querySet: timestamps, beginningOfPassWriteIndex: 2 * timed, endOfPassWriteIndex: 2 * timed + 1 } });
        timed++;
      }
      pass ??= encoder.beginComputePass({ label: 'webgpu-train pass' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...c.workgroups);
    }
    pass?.end();
    if (timestamps && profiling) this.readTimestamps(encoder, timestamps, dispatches, profiling);
    if (arena && uniformCount > 0) this.device.queue.writeBuffer(arena, 0, uniformBytes, 0, uniformCount * UNIFORM_SLOT);
    this.device.queue.submit([encoder.finish()]);
    for (const c of commands) if (c.kind === 'copy' && c.temporary) c.src.destroy();
  }

  private readTimestamps(encoder: GPUCommandEncoder, querySet: GPUQuerySet, dispatches: Command[], profiling: ProfileRecorder): void {
    const bytes = querySet.count * 8;
    const resolved = this.device.createBuffer({ label: 'profile timestamps', size: bytes, usage: 0x200 /* QUERY_RESOLVE */ | BufferUsage.COPY_SRC });
    const staging = this.device.createBuffer({ label: 'profile timestamps readback', size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    encoder.resolveQuerySet(querySet, 0, querySet.count, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    const read = this.device.queue.onSubmittedWorkDone().then(async () => {
      await staging.mapAsync(0x1 /* GPUMapMode.READ */);
      const t = new BigUint64Array(staging.getMappedRange().slice(0));
      dispatches.forEach((c, i) => {
        if (c.kind !== 'dispatch') return;
        const ns = t[2 * i + 1]! > t[2 * i]! ? Number(t[2 * i + 1]! - t[2 * i]!) : 0;
        profiling.add(c.kernel.name, ns / 1e6, c.flops);
      });
      staging.destroy();
      resolved.destroy();
      querySet.destroy();
    });
    profiling.inFlight.push(read);
  }

  private arena(bytes: number): GPUBuffer | null {
    if (bytes === 0) return this.uniformArena;
    if (this.uniformArena && this.uniformArena.size >= bytes) return this.uniformArena;
    const size = Math.max(bytes, (this.uniformArena?.size ?? 0) * 2, 64 * UNIFORM_SLOT);
    if (this.uniformArena) {
      this.pool.internalBytes -= this.uniformArena.size;
      this.pool.internalBuffers--;
      this.uniformArena.destroy();
    }
    this.uniformArena = this.device.createBuffer({ label: 'uniform arena', size, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    this.pool.internalBytes += size;
    this.pool.internalBuffers++;
    return this.uniformArena;
  }

  private throwGpuError(): void {
    const e = this.gpuError;
    if (e) {
      this.gpuError = null;
      throw e;
    }
  }

  /**
   * Runs `fn` and returns, with its result, the GPU time of every dispatch it submitted, by
   * kernel: from timestamp queries when the adapter has them, else from submit-to-done timing.
   */
  async profile<T>(fn: () => T | Promise<T>): Promise<{ result: T; profile: Profile }> {
    if (this.profiling) throw new Error('profile: a profile is already running on this engine');
    await this.sync();
    this.profiling = new ProfileRecorder(this.device.features.has('timestamp-query') ? 'timestamp-query' : 'submit-to-done');
    try {
      const result = await fn();
      await this.sync();
      return { result, profile: await this.profiling.result() };
    } finally {
      this.profiling = null;
    }
  }

  /** Waits until the GPU has finished everything submitted so far. */
  async sync(): Promise<void> {
    await this.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.lostPromise]);
    this.throwGpuError();
  }
}

function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return parts.length ? parts.join(' / ') : 'unknown adapter';
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (depth > 4 || value == null || typeof value !== 'object') return;
  if (value instanceof Tensor) into.add(value);
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, into, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
}
