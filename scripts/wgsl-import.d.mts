// Types of scripts/wgsl-import.mjs, for the TypeScript files that import it.
import type { Plugin } from 'esbuild';

export declare const SHADER_ROOT: string;

export interface LinkOptions {
  /** Where import paths start; default src/shaders. */
  root?: string;
}

/** The .wgsl file's text with its `#import` lines resolved, and the files it is made of (itself first). */
export declare function linkWgsl(file: string, options?: LinkOptions): { code: string; files: string[] };

/** An esbuild plugin that loads .wgsl files as linked text. */
export declare function wgslPlugin(options?: LinkOptions): Plugin;
