// Types of scripts/make-mnist.mjs, for the TypeScript files that import it.

/** The package's digits of class `digit`: 784 floats in [0,1] per digit, `count` digits. */
export declare function packageDigits(digit: number, packageDir?: string): { values: number[]; count: number };

/** Writes the IDX pair for at most `perClass` digits of each class (all when undefined) into outDir. */
export declare function makeMnist(outDir: string, perClass?: number): { count: number; perClass: number[]; bytes: number };
