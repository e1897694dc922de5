// The command queue: ops record dispatches and copies synchronously; `flush()` waits for any
// pipeline still being compiled, encodes everything recorded into one command encoder and
// submits it. Uniforms of one flush share one arena buffer; readback buffers are pooled. It also
// carries the dispatch trace, the labels and the profiler's hooks. Knows kernels (reflected WGSL)
// and tensors' buffer ranges, nothing of ops.
import type { DeviceHealth } from './device.js';
import type { Constants, Kernel } from './kernel.js';
import { BufferUsage, type BufferPool } from './memory.js';
import type { PipelineCache, PipelineEntry } from './pipelines.js';
import type { ProfileRecorder } from './profiler.js';
import { shapeString, type Tensor } from './tensor.js';

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

export class CommandQueue {
  /** Number of compute dispatches recorded since the queue was made. */
  dispatchCount = 0;
  debug: boolean;
  profiling: ProfileRecorder | null = null;
  private trace: DispatchRecord[] | null = null;
  private readonly labels: string[] = [];
  private pending: Command[] = [];
  private readonly pendingBuffers = new Set<GPUBuffer>();
  private flushChain: Promise<void> = Promise.resolve();
  private uniformArena: GPUBuffer | null = null;
  private readonly readPool = new Map<number, GPUBuffer[]>();

  constructor(
    private readonly device: GPUDevice,
    private readonly health: DeviceHealth,
    private readonly pool: BufferPool,
    private readonly pipelines: PipelineCache,
    debug: boolean,
  ) {
    this.debug = debug;
  }

  // ---------------------------------------------------------------- recording

  /** Records one dispatch; bindings and uniforms are checked against the kernel's reflected WGSL. */
  dispatch(k: Kernel, spec: DispatchSpec): void {
    this.health.assertUsable();
    const name = k.name;
    const constants = spec.constants ?? {};
    const resources: GPUBufferBinding[] = [];
    const written = new Set<GPUBuffer>();
    const read = new Set<GPUBuffer>();
    const max = this.device.limits.maxStorageBufferBindingSize;
    for (const b of k.bindings) {
      if (b.kind === 'uniform') continue;
      const t = spec.bindings[b.name];
      if (!t) throw new Error(`kernel ${name}: binding ${b.name} was not given (needs: ${k.bindings.filter((x) => x.kind === 'storage').map((x) => x.name).join(', ')})`);
      t.assertAlive(name);
      const r = t.binding();
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
    const workgroups = this.workgroupGrid(k, constants, spec);
    const context = this.labels.join(' ');
    const label = context ? `${name} ${context}` : name;
    this.dispatchCount++;
    this.trace?.push({ kernel: name, label, workgroups });
    if (this.debug) console.log(`[webgpu-train] dispatch ${label} ${JSON.stringify(constants)} workgroups=${workgroups.join('x')}`);
    if (workgroups[0] * workgroups[1] * workgroups[2] === 0) return;
    this.record({ kind: 'dispatch', kernel: k, pipeline: this.pipelines.get(k, constants), resources, uniform, workgroups, label, flops: spec.flops });
  }

  private workgroupGrid(k: Kernel, constants: Constants, spec: DispatchSpec): [number, number, number] {
    const maxPerDim = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (spec.workgroups) {
      const [x, y = 1, z = 1] = spec.workgroups;
      if (x > maxPerDim || y > maxPerDim || z > maxPerDim) {
        throw new Error(`kernel ${k.name}: workgroup grid ${x}x${y}x${z} exceeds maxComputeWorkgroupsPerDimension (${maxPerDim})`);
      }
      return [x, y, z];
    }
    const threads = spec.threads ?? 0;
    const [wx] = k.workgroupSize(constants);
    const groups = Math.ceil(threads / wx);
    if (groups <= maxPerDim) return [groups, 1, 1];
    const y = Math.ceil(groups / maxPerDim);
    if (y > maxPerDim) throw new Error(`kernel ${k.name}: ${threads} invocations exceed the device's dispatch limits`);
    return [maxPerDim, y, 1];
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

  /** Records the copy of t's values into a readback buffer now, then flushes and maps it. */
  async read(t: Tensor): Promise<Float32Array> {
    t.assertAlive('read');
    const bytes = t.size * 4;
    if (bytes === 0) return new Float32Array(0);
    const size = Math.ceil(bytes / 256) * 256;
    const staging = this.readPool.get(size)?.pop() ?? this.device.createBuffer({ label: `readback ${size}B`, size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    this.record({ kind: 'copy', src: t.storage.buffer, srcOffset: t.offset * 4, dst: staging, dstOffset: 0, size: bytes, temporary: false });
    await this.flush();
    await this.health.race(staging.mapAsync(0x1 /* GPUMapMode.READ */, 0, bytes));
    const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
    staging.unmap();
    const list = this.readPool.get(size) ?? [];
    list.push(staging);
    this.readPool.set(size, list);
    this.health.throwGpuError();
    return out;
  }

  private record(c: Command): void {
    this.pending.push(c);
    if (c.kind === 'dispatch') for (const r of c.resources) this.pendingBuffers.add(r.buffer);
    else {
      this.pendingBuffers.add(c.src);
      this.pendingBuffers.add(c.dst);
    }
  }

  // ---------------------------------------------------------------- labels and tracing

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

  // ---------------------------------------------------------------- submitting

  /** Encodes every recorded command into one command buffer and submits it. */
  flush(): Promise<void> {
    const run = this.flushChain.then(() => this.submitRecorded());
    this.flushChain = run.catch(() => undefined);
    return run;
  }

  /** Waits until the GPU has finished everything submitted so far. */
  async sync(): Promise<void> {
    await this.flush();
    await this.health.race(this.device.queue.onSubmittedWorkDone());
    this.health.throwGpuError();
  }

  private async submitRecorded(): Promise<void> {
    this.health.assertUsable();
    this.health.throwGpuError();
    const commands = this.pending;
    if (commands.length === 0) return;
    this.pending = [];
    try {
      for (const c of commands) if (c.kind === 'dispatch' && !c.pipeline.pipeline) await this.health.race(c.pipeline.promise);
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
      this.pool.internal(-this.uniformArena.size);
      this.uniformArena.destroy();
    }
    this.uniformArena = this.device.createBuffer({ label: 'uniform arena', size, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    this.pool.internal(size);
    return this.uniformArena;
  }
}
