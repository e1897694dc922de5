// GPU memory: the buffer pool. Freed tensor buffers go to a free list keyed by their size class
// and are handed out again, so a training loop with fixed shapes allocates nothing once warm.

// GPUBufferUsage bits, spelled out so that no browser global is needed (Node/Dawn).
export const BufferUsage = { MAP_READ: 0x1, MAP_WRITE: 0x2, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;

const TENSOR_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

/** Size class: multiples of 256 bytes (also the storage offset alignment), at least 256. */
export function sizeClass(bytes: number): number {
  return Math.max(256, Math.ceil(bytes / 256) * 256);
}

export interface MemoryInfo {
  /** Every buffer the engine holds on the device: in use, pooled and internal. */
  bytes: number;
  buffers: number;
  inUseBytes: number;
  inUseBuffers: number;
  pooledBytes: number;
  pooledBuffers: number;
  /** The most `bytes` has been since the engine was made or since engine.resetPeakMemory(). */
  peakBytes: number;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private inUse = new Set<GPUBuffer>();
  private pooledBytes = 0;
  private pooledCount = 0;
  private internalBytes = 0;
  private internalBuffers = 0;
  /** Every byte held: in use, pooled and internal (kept as it changes, for the peak). */
  private totalBytes = 0;
  private peakBytes = 0;

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, label: string): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.pooledBytes -= size;
      this.pooledCount--;
      buffer.label = label;
    } else {
      buffer = this.device.createBuffer({ label, size, usage: TENSOR_USAGE });
      this.grow(size);
    }
    this.inUse.add(buffer);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    if (!this.inUse.delete(buffer)) throw new Error(`buffer pool: ${buffer.label} released twice or not from this pool`);
    const list = this.free.get(buffer.size) ?? [];
    list.push(buffer);
    this.free.set(buffer.size, list);
    this.pooledBytes += buffer.size;
    this.pooledCount++;
  }

  /** Destroys the pooled (free) buffers. Only call when no recorded command can still use them. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.totalBytes -= this.pooledBytes;
    this.pooledBytes = 0;
    this.pooledCount = 0;
  }

  /** Counts a buffer the engine made outside the pool (bytes < 0: one it destroyed). */
  internal(bytes: number): void {
    this.internalBytes += bytes;
    this.internalBuffers += Math.sign(bytes);
    this.grow(bytes);
  }

  private grow(bytes: number): void {
    this.totalBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.totalBytes);
  }

  /** Starts the peak over from the bytes held now. */
  resetPeak(): void {
    this.peakBytes = this.totalBytes;
  }

  memory(): MemoryInfo {
    let inUseBytes = 0;
    for (const b of this.inUse) inUseBytes += b.size;
    return {
      bytes: inUseBytes + this.pooledBytes + this.internalBytes,
      buffers: this.inUse.size + this.pooledCount + this.internalBuffers,
      inUseBytes,
      inUseBuffers: this.inUse.size,
      pooledBytes: this.pooledBytes,
      pooledBuffers: this.pooledCount,
      peakBytes: this.peakBytes,
    };
  }
}
