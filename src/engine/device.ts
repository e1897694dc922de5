// The GPU device: acquiring an adapter and a device with the limits the kernels need, and
// watching it (device loss, uncaptured validation errors). Knows nothing of kernels or tensors.
import { noAdapterMessage, noWebGpuMessage } from './adapter-help.js';
import { waitWithTickInterval } from './dawn-ticks.js';

export interface DeviceOptions {
  /** Use this device instead of requesting one (for example one made by the `webgpu` npm package). */
  device?: GPUDevice;
  /** The GPU entry point; defaults to `navigator.gpu`. In Node pass `create([...])` from the `webgpu` package. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /**
   * With dawn.node (the `webgpu` package, given as `gpu`): milliseconds between the binding's
   * device ticks while the engine waits on the GPU (default 1; see dawn-ticks.ts). 0 leaves the
   * binding's own busy loop, which holds a CPU core for the whole wait.
   */
  dawnTickIntervalMs?: number;
}

export interface AcquiredDevice {
  device: GPUDevice;
  adapterName: string;
  /**
   * The entry point and adapter the device came from (null when a device was given). Held for the
   * engine's lifetime: dawn.node (the `webgpu` package) tears down its instance when the GPU
   * object is garbage-collected, and the process then crashes on the next device call.
   */
  gpu: GPU | null;
  adapter: GPUAdapter | null;
}

const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** Requests an adapter and a device with the adapter's full limits (or wraps the given device). */
export async function acquireDevice(options: DeviceOptions): Promise<AcquiredDevice> {
  if (options.device) {
    const info = (options.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return { device: options.device, adapterName: describeAdapter(info), gpu: null, adapter: null };
  }
  const gpu = options.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new Error(noWebGpuMessage());
  const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined);
  if (!adapter) throw new Error(noAdapterMessage(options.gpu !== undefined));
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const requiredFeatures: GPUFeatureName[] = [];
  // subgroups: the matmul_subgroup variant, which the autotuner tries only where it is present.
  for (const f of ['timestamp-query', 'subgroups'] as const) if (adapter.features.has(f)) requiredFeatures.push(f);
  const device = await adapter.requestDevice({ label: 'webgpu-train', requiredLimits, requiredFeatures });
  return { device, adapterName: describeAdapter(adapter.info), gpu, adapter };
}

function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return parts.length ? parts.join(' / ') : 'unknown adapter';
}

/**
 * Device loss and uncaptured errors. After a loss every call into the engine throws the loss's
 * error; an uncaptured validation error is thrown by the next flush or read.
 */
export class DeviceHealth {
  private lostError: Error | null = null;
  private readonly listeners: ((e: Error) => void)[] = [];
  /** Rejects when the device is lost: raced against every wait on the GPU so that none hangs. */
  readonly lostPromise: Promise<never>;
  private gpuError: Error | null = null;

  /** `tickIntervalMs`: see DeviceOptions.dawnTickIntervalMs (0 for none). */
  constructor(
    device: GPUDevice,
    private readonly tickIntervalMs = 0,
  ) {
    this.lostPromise = device.lost.then((info) => {
      const error = new Error(`GPU device lost (${info.reason}): ${info.message || 'no message'}`);
      this.lostError = error;
      for (const l of this.listeners) l(error);
      throw error;
    });
    this.lostPromise.catch(() => undefined); // observed through lostError and onLost
    device.addEventListener?.('uncapturederror', (event) => {
      const e = (event as GPUUncapturedErrorEvent).error;
      this.gpuError ??= new Error(`WebGPU error: ${e.message}`);
    });
  }

  get lost(): boolean {
    return this.lostError !== null;
  }

  onLost(listener: (error: Error) => void): void {
    if (this.lostError) listener(this.lostError);
    else this.listeners.push(listener);
  }

  assertUsable(): void {
    if (this.lostError) throw this.lostError;
  }

  /** Throws (once) the first uncaptured GPU error seen since the last call. */
  throwGpuError(): void {
    const e = this.gpuError;
    if (e) {
      this.gpuError = null;
      throw e;
    }
  }

  /** Waits for `promise`, or throws the loss's error if the device is lost first. */
  race<T>(promise: Promise<T>): Promise<T> {
    return waitWithTickInterval(Promise.race([promise, this.lostPromise]), this.tickIntervalMs);
  }
}
