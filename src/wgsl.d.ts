// WGSL files are imported as text, with their #import lines resolved (scripts/wgsl-import.mjs,
// used by the esbuild builds and vitest.config.ts).
declare module '*.wgsl' {
  const source: string;
  export default source;
}

// The module build of wgsl_reflect (its Node `main` does not export WgslReflect); same types as the package.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
