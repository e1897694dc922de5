// Engine: what ops and users make tensors and record work through. One device, one command
// queue, one buffer pool and one pipeline cache are shared by an engine and its contexts
// (`engine.context()`); each context has its own scope stack, and the tensors it makes (and the
// outputs of ops on them) belong to it, so concurrent tasks with a context each never touch each
// other's tensors. The pieces: device.ts (device and its health), pipelines.ts, queue.ts
// (recording and submitting), memory.ts (buffer pool), scopes.ts.
import { acquireDevice, DeviceHealth, type DeviceOptions } from './device.js';
import type { Constants, Kernel } from './kernel.js';
import { kernel as registeredKernel, type KernelName } from './kernels.js';
import { BufferPool, type MemoryInfo } from './memory.js';
import { Parameter, ParameterStore } from './parameters.js';
import { PipelineCache } from './pipelines.js';
import { ProfileRecorder, type Profile } from './profiler.js';
import { CommandQueue, type DispatchRecord, type DispatchSpec } from './queue.js';
import { randomNormal, randomUniform } from './random.js';
import { ScopeStack } from './scopes.js';
import { shapeSize, shapeString, Tensor, type Shape, type Storage } from './tensor.js';

export type { DispatchRecord, DispatchSpec } from './queue.js';

export interface EngineOptions extends DeviceOptions {
  /** Log every compiled shader and every dispatch to the console. */
  debug?: boolean;
}

/** What an engine and its contexts share. */
class Core {
  readonly health: DeviceHealth;
  readonly pool: BufferPool;
  readonly queue: CommandQueue;
  /** Kernel configurations chosen by the autotuner, by kernel name (override constants). */
  readonly tuning = new Map<string, Constants>();
  seedCounter = 0x9e3779b9;
  placeholder: Tensor | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly adapterName: string,
    readonly gpu: GPU | null,
    readonly adapter: GPUAdapter | null,
    debug: boolean,
    tickIntervalMs: number,
  ) {
    this.health = new DeviceHealth(device, tickIntervalMs);
    this.pool = new BufferPool(device);
    const pipelines = new PipelineCache(device, () => this.queue.debug);
    this.queue = new CommandQueue(device, this.health, this.pool, pipelines, debug);
  }
}

export class Engine {
  private readonly scopes = new ScopeStack();

  private constructor(private readonly core: Core) {}

  /** Acquires an adapter and a device (or wraps the given device) with the limits the kernels need. */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    const tickIntervalMs = options.dawnTickIntervalMs ?? (options.gpu ? 1 : 0);
    if (!(Number.isFinite(tickIntervalMs) && tickIntervalMs >= 0)) throw new Error(`Engine.create: dawnTickIntervalMs ${tickIntervalMs} must be a non-negative number of milliseconds`);
    const acquired = await acquireDevice(options);
    return new Engine(new Core(acquired.device, acquired.adapterName, acquired.gpu, acquired.adapter, options.debug ?? false, tickIntervalMs));
  }

  /**
   * A context: the same device, queue, memory and kernels, with its own scopes. Give each
   * concurrent task (clients trained with Promise.all, an evaluation running while training goes
   * on) its own context and make its tensors with it: ops put their outputs in the context of
   * their first input, so no other task's scope can free them.
   */
  context(): Engine {
    return new Engine(this.core);
  }

  /** Whether two engines are contexts of one device. */
  sharesDevice(other: Engine): boolean {
    return this.core === other.core;
  }

  get device(): GPUDevice {
    return this.core.device;
  }

  get limits(): GPUSupportedLimits {
    return this.core.device.limits;
  }

  get adapterName(): string {
    return this.core.adapterName;
  }

  /**
   * The entry point and adapter the device came from (null when a device was given), held for
   * the engine's lifetime: dawn.node (the `webgpu` package) tears its instance down when the GPU
   * object is garbage-collected, and the process then crashes on the next device call.
   */
  get gpu(): GPU | null {
    return this.core.gpu;
  }

  get adapter(): GPUAdapter | null {
    return this.core.adapter;
  }

  /** Log every compiled shader and every dispatch. */
  get debug(): boolean {
    return this.core.queue.debug;
  }

  set debug(on: boolean) {
    this.core.queue.debug = on;
  }

  /** Kernel configurations chosen by the autotuner (autotune.ts), by kernel name. */
  get tuning(): Map<string, Constants> {
    return this.core.tuning;
  }

  /** Number of compute dispatches recorded since the engine was made. */
  get dispatchCount(): number {
    return this.core.queue.dispatchCount;
  }

  /** Called once if the device is lost; later calls into the engine throw the same error. */
  onLost(listener: (error: Error) => void): void {
    this.core.health.onLost(listener);
  }

  get lost(): boolean {
    return this.core.health.lost;
  }

  // ---------------------------------------------------------------- tensors

  /** An uninitialised tensor from the pool (ops write every element before anything reads it). */
  empty(shape: Shape, name: string): Tensor {
    this.core.health.assertUsable();
    const bytes = shapeSize(shape) * 4;
    const max = this.limits.maxStorageBufferBindingSize;
    if (bytes > max) {
      throw new Error(`${name}: tensor of shape ${shapeString(shape)} needs ${bytes} bytes, more than the device's maxStorageBufferBindingSize (${max})`);
    }
    const storage: Storage = { buffer: this.core.pool.acquire(bytes, name), refs: 1 };
    return this.scopes.track(new Tensor(this, shape, storage, name));
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
    if (!this.core.placeholder || this.core.placeholder.disposed) this.core.placeholder = this.keep(this.zeros([4], 'placeholder'));
    return this.core.placeholder;
  }

  /**
   * A parameter: a kept tensor that optimizers update and that can be frozen, in a flat store of
   * its own until a model gathers it into the model's store.
   */
  parameter(data: ArrayLike<number>, shape: Shape, name: string): Parameter {
    const n = shapeSize(shape);
    if (data.length !== n) throw new Error(`parameter ${name}: ${data.length} values do not fill shape ${shapeString(shape)}`);
    for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new Error(`parameter ${name}: invalid shape ${shapeString(shape)}`);
    return ParameterStore.single(this, data instanceof Float32Array ? data : Float32Array.from(data), shape, name);
  }

  /** A tensor sharing `source`'s elements from `offset` on (a multiple of 64) with another shape. */
  view(source: Tensor, shape: Shape, name = `${source.name}.view`, offset = 0): Tensor {
    source.assertAlive('view');
    if (offset % 64 !== 0 || offset < 0 || offset + shapeSize(shape) > source.size) {
      throw new Error(`view: ${shapeString(shape)} at element ${offset} does not fit in ${source.name} ${shapeString(source.shape)} (offsets are multiples of 64)`);
    }
    source.storage.refs++;
    return this.scopes.track(new Tensor(this, shape, source.storage, name, source.offset + offset));
  }

  /** Copies `src` into `dst` (same number of elements), in order with the recorded commands. */
  copy(src: Tensor, dst: Tensor): void {
    this.core.queue.copy(src, dst);
  }

  /** Overwrites a tensor's values from the CPU, in order with the recorded commands. */
  write(t: Tensor, data: Float32Array): void {
    this.core.queue.write(t, data);
  }

  read(t: Tensor): Promise<Float32Array> {
    return this.core.queue.read(t);
  }

  releaseStorage(storage: Storage): void {
    if (--storage.refs === 0) this.core.pool.release(storage.buffer);
  }

  memory(): MemoryInfo {
    return this.core.pool.memory();
  }

  /** Starts memory().peakBytes over from the bytes held now (shared by the engine's contexts). */
  resetPeakMemory(): void {
    this.core.pool.resetPeak();
  }

  /** Destroys pooled buffers that no tensor uses (after finishing recorded work). */
  async trim(): Promise<void> {
    await this.flush();
    this.core.pool.trim();
  }

  /** A new seed from the engine's sequence (shared by its contexts; saved with the training state). */
  nextSeed(): number {
    const c = this.core;
    c.seedCounter = (Math.imul(c.seedCounter ^ (c.seedCounter >>> 16), 0x45d9f3b) + 0x6b43a9b5) >>> 0;
    return c.seedCounter;
  }

  /** The state of the seed sequence, to save and restore with a training run. */
  get seedState(): number {
    return this.core.seedCounter;
  }

  set seedState(value: number) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`seedState: ${value} is not a 32-bit unsigned integer`);
    this.core.seedCounter = value;
  }

  // ---------------------------------------------------------------- scopes

  /** Marks tensors as kept: no scope will dispose them. */
  keep<T extends Tensor>(t: T): T {
    return this.scopes.keep(t);
  }

  /**
   * Runs `fn` (sync or async) and then disposes every tensor made inside it with this engine (or
   * by ops on such tensors), except kept tensors and the tensors it returns (directly, or in an
   * array, Map or plain object), which pass to the enclosing scope. Intermediates stay alive
   * across `await`s inside `fn`. Scopes of one engine must nest: tasks that run concurrently
   * take a context each (`context()`); interleaved scopes are refused with an error.
   */
  scope<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.scopes.run(fn);
  }

  // ---------------------------------------------------------------- kernels

  /** Records one dispatch of a kernel (registered by name, or a Kernel of the caller's); bindings and uniforms are checked against the WGSL. */
  dispatch(kernel: KernelName | Kernel, spec: DispatchSpec): void {
    this.core.queue.dispatch(typeof kernel === 'string' ? registeredKernel(kernel) : kernel, spec);
  }

  /** Runs `fn` with `label` added to the label of every dispatch it records. */
  withLabel<T>(label: string, fn: () => T): T {
    return this.core.queue.withLabel(label, fn);
  }

  /** Records every dispatch made while `fn` runs and returns them with fn's result. */
  traceDispatches<T>(fn: () => T): { result: T; dispatches: DispatchRecord[] } {
    return this.core.queue.traceDispatches(fn);
  }

  /** Encodes every recorded command into one command buffer and submits it. */
  flush(): Promise<void> {
    return this.core.queue.flush();
  }

  /** Waits until the GPU has finished everything submitted so far. */
  sync(): Promise<void> {
    return this.core.queue.sync();
  }

  /**
   * Runs `fn` and returns, with its result, the GPU time of every dispatch it submitted, by
   * kernel: from timestamp queries when the adapter has them, else from submit-to-done timing.
   */
  async profile<T>(fn: () => T | Promise<T>): Promise<{ result: T; profile: Profile }> {
    const queue = this.core.queue;
    if (queue.profiling) throw new Error('profile: a profile is already running on this engine');
    await this.sync();
    const recorder = new ProfileRecorder(this.device.features.has('timestamp-query') ? 'timestamp-query' : 'submit-to-done');
    queue.profiling = recorder;
    try {
      const result = await fn();
      await this.sync();
      return { result, profile: await recorder.result() };
    } finally {
      queue.profiling = null;
    }
  }
}
