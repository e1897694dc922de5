// Tensor: an f32 GPU buffer (shared by views) with a shape. Autograd fields: `node` is the op
// that produced it (see autograd.ts); parameters are the Parameter subclass (parameters.ts).
import type { Engine } from './engine.js';

export type Shape = readonly number[];

/** A buffer shared by a tensor and its views; returned to the pool when the last one is disposed. */
export interface Storage {
  buffer: GPUBuffer;
  refs: number;
}

/**
 * d(loss)/d(input) from dy = d(loss)/d(output). `into`, when given, is a tensor of the input's
 * shape that the gradient may be written into instead of a new tensor (a parameter's region of
 * its model's flat gradient buffer): functions that can, return it; others ignore it.
 */
export type GradientFn = (dy: Tensor, into?: Tensor) => Tensor;

/**
 * What autograd records for an op: its inputs, per input how to map dy to that input's gradient,
 * and the other tensors its backward reads (the op's output, statistics it saved), so that a
 * backward through a freed graph is caught before it runs.
 */
export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** grads[i] gives d(loss)/d(inputs[i]); null where the input is not differentiable. */
  readonly grads: readonly (GradientFn | null)[];
  readonly saved: readonly Tensor[];
}

let nextTensorId = 1;

export function shapeSize(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export class Tensor {
  readonly id = nextTensorId++;
  readonly size: number;
  node: Node | null = null;
  /** Kept tensors are never disposed by a scope (parameters, optimizer state, gradients). */
  kept = false;
  /** Record ops on this (non-parameter) tensor so that gradients with respect to it can be taken. */
  requiresGrad = false;
  private isDisposed = false;

  constructor(
    readonly engine: Engine,
    readonly shape: Shape,
    private backing: Storage,
    public name: string,
    /** Offset into the storage buffer, in elements (a multiple of 64, the 256-byte binding alignment). */
    private at = 0,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`tensor ${name}: invalid shape ${shapeString(shape)}`);
    }
    this.size = shapeSize(shape);
  }

  get storage(): Storage {
    return this.backing;
  }

  get offset(): number {
    return this.at;
  }

  /**
   * Moves the tensor onto another storage (whose elements at `offset` must already hold its
   * values): how a model gathers its parameters into one flat buffer.
   */
  relocate(storage: Storage, offset: number): void {
    this.assertAlive('relocate');
    storage.refs++;
    this.engine.releaseStorage(this.backing);
    this.backing = storage;
    this.at = offset;
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Throws if the tensor can no longer be used; `op` names the caller for the message. */
  assertAlive(op: string): void {
    if (this.isDisposed) throw new Error(`${op}: tensor ${this.name} ${shapeString(this.shape)} was disposed`);
  }

  /** The buffer range a kernel binds: rounded up to 16 bytes so it also fits array<vec4<f32>>. */
  binding(): GPUBufferBinding {
    return { buffer: this.storage.buffer, offset: this.offset * 4, size: Math.max(16, Math.ceil((this.size * 4) / 16) * 16) };
  }

  /** Copies the values back to the CPU. */
  async data(): Promise<Float32Array> {
    this.assertAlive('data');
    return this.engine.read(this);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor ${this.name} has shape ${shapeString(this.shape)}, not one element`);
    return (await this.data())[0]!;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.node = null;
    this.engine.releaseStorage(this.storage);
  }
}
