// WGSL files are imported as text (esbuild's text loader, and the wgsl plugin in vitest.config.ts).
declare module '*.wgsl' {
  const source: string;
  export default source;
}

// The module build of wgsl_reflect (its Node `main` does not export WgslReflect); same types as the package.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
