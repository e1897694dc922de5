// A Kernel is one WGSL compute shader plus what reflection tells about it: its bindings
// (name, slot, access, element stride), the members of its uniform struct, its overrides
// and its workgroup size. Nothing here is written by hand a second time: callers bind by
// name and pass uniforms by member name, and this file turns them into slots and bytes.
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';

// GPUShaderStage.COMPUTE, spelled out so that no browser global is needed (Node/Dawn).
const SHADER_STAGE_COMPUTE = 0x4;

export type Constants = Record<string, number | boolean>;

export interface StorageBinding {
  kind: 'storage';
  name: string;
  binding: number;
  readOnly: boolean;
  /** Bytes per array element (4 for array<f32>, 16 for array<vec4<f32>>). */
  stride: number;
}

export interface UniformBinding {
  kind: 'uniform';
  name: string;
  binding: number;
  size: number;
  members: { name: string; offset: number; type: 'f32' | 'u32' | 'i32' }[];
}

export type KernelBinding = StorageBinding | UniformBinding;

export class Kernel {
  readonly bindings: KernelBinding[];
  readonly uniform: UniformBinding | null;
  readonly overrides: Map<string, string>;
  readonly entryPoint: string;
  private readonly workgroupSizeExpr: (number | string)[];
  private readonly defaultWorkgroupSize: number[];

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    let reflect: WgslReflect;
    try {
      reflect = new WgslReflect(source);
    } catch (e) {
      throw new Error(`kernel ${name}: WGSL could not be parsed for reflection: ${(e as Error).message}`);
    }
    const entry = reflect.entry.compute[0];
    if (!entry || reflect.entry.compute.length !== 1) {
      throw new Error(`kernel ${name}: expected exactly one @compute entry point`);
    }
    this.entryPoint = entry.name;
    this.defaultWorkgroupSize = [...(entry.workgroupSize ?? [1, 1, 1])];
    const size = entry.attributes?.find((a) => a.name === 'workgroup_size')?.value;
    const sizeList = Array.isArray(size) ? size : size != null ? [size] : [];
    this.workgroupSizeExpr = [0, 1, 2].map((i) => {
      const v = sizeList[i];
      if (v == null) return 1;
      const s = typeof v === 'string' ? v : String(v);
      return /^\d+u?$/.test(s) ? parseInt(s, 10) : s;
    });
    this.overrides = new Map(reflect.overrides.map((o) => [o.name, o.type?.name ?? 'u32']));

    const bindings: KernelBinding[] = [];
    let uniform: UniformBinding | null = null;
    for (const group of reflect.getBindGroups()) {
      for (const b of group) {
        if (!b) continue;
        if (b.group !== 0) throw new Error(`kernel ${name}: binding ${b.name} is in group ${b.group}; only group 0 is used`);
        if (b.resourceType === 1) {
          // Storage buffer: a runtime-sized array of f32 or vec4<f32>.
          const stride = (b.type as { stride?: number }).stride ?? 4;
          bindings.push({ kind: 'storage', name: b.name, binding: b.binding, readOnly: b.access !== 'read_write', stride });
        } else if (b.resourceType === 0) {
          const members = ((b as unknown as { members?: { name: string; offset: number; type: { name: string } }[] }).members ?? []).map(
            (m) => {
              const t = m.type.name;
              if (t !== 'f32' && t !== 'u32' && t !== 'i32') {
                throw new Error(`kernel ${name}: uniform member ${m.name} has type ${t}; only scalar f32/u32/i32 members are supported`);
              }
              return { name: m.name, offset: m.offset, type: t as 'f32' | 'u32' | 'i32' };
            },
          );
          uniform = { kind: 'uniform', name: b.name, binding: b.binding, size: Math.max(16, Math.ceil(b.size / 16) * 16), members };
          bindings.push(uniform);
        } else {
          throw new Error(`kernel ${name}: binding ${b.name} is neither a storage buffer nor a uniform buffer`);
        }
      }
    }
    bindings.sort((x, y) => x.binding - y.binding);
    this.bindings = bindings;
    this.uniform = uniform;
  }

  /** Workgroup size with override names resolved from the constants (or the shader's defaults). */
  workgroupSize(constants: Constants): [number, number, number] {
    return this.workgroupSizeExpr.map((v, i) => {
      if (typeof v === 'number') return v;
      const c = constants[v] ?? this.defaultWorkgroupSize[i];
      if (typeof c !== 'number') throw new Error(`kernel ${this.name}: workgroup size override ${v} has no value`);
      return c;
    }) as [number, number, number];
  }

  /** Checks constant names against the shader's overrides; returns them as numbers for the pipeline. */
  pipelineConstants(constants: Constants): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(constants)) {
      if (!this.overrides.has(k)) {
        throw new Error(`kernel ${this.name}: no override constant named ${k} (has: ${[...this.overrides.keys()].join(', ') || 'none'})`);
      }
      out[k] = typeof v === 'boolean' ? (v ? 1 : 0) : v;
    }
    return out;
  }

  /** Packs uniform values by the reflected member offsets and types. Every member must be given. */
  packUniform(values: Record<string, number>, into: DataView, byteOffset: number): void {
    const u = this.uniform;
    if (!u) return;
    for (const m of u.members) {
      const v = values[m.name];
      if (v === undefined) throw new Error(`kernel ${this.name}: uniform ${u.name}.${m.name} was not given`);
      if (m.type === 'f32') into.setFloat32(byteOffset + m.offset, v, true);
      else if (m.type === 'u32') {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`kernel ${this.name}: uniform ${m.name}=${v} is not a u32`);
        into.setUint32(byteOffset + m.offset, v, true);
      } else into.setInt32(byteOffset + m.offset, v, true);
    }
    for (const k of Object.keys(values)) {
      if (!u.members.some((m) => m.name === k)) throw new Error(`kernel ${this.name}: uniform has no member ${k}`);
    }
  }

  bindGroupLayoutEntries(): GPUBindGroupLayoutEntry[] {
    return this.bindings.map((b) => ({
      binding: b.binding,
      visibility: SHADER_STAGE_COMPUTE,
      buffer: { type: b.kind === 'uniform' ? 'uniform' : b.readOnly ? 'read-only-storage' : 'storage' },
    }));
  }
}

/** Turns compilation messages into one error naming the kernel, the line and the WGSL there. */
export function compilationError(kernel: Kernel, info: GPUCompilationInfo): Error | null {
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length === 0) return null;
  const lines = kernel.source.split('\n');
  const text = errors
    .map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}\n    ${(lines[m.lineNum - 1] ?? '').trim()}`)
    .join('\n');
  return new Error(`kernel ${kernel.name}: WGSL failed to compile\n${text}`);
}
