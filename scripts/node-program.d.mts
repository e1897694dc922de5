export const ROOT: string;
export const SWIFTSHADER_ICD: string;
export function bundleNodeProgram(entry: string): Promise<string>;
export function dawnEnv(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
