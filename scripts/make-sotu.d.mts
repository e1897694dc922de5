// Types of scripts/make-sotu.mjs, for the TypeScript files that import it.

export interface SotuIndexUser {
  id: string;
  name: string;
  party: string;
  years: number[];
  words: number;
  file: string;
}

/** A president's name as a file-name-safe id: "Franklin D Roosevelt" -> "franklin-d-roosevelt". */
export declare function userId(name: string): string;

/** The package's addresses (stage directions removed), by year then name. */
export declare function packageAddresses(packageDir?: string): { year: number; name: string; party: string; text: string }[];

/** `text` up to the end of the first sentence that ends at or after its n-th word (all of it when shorter). */
export declare function firstWords(text: string, n: number): string;

/** Writes index.json and one <id>.json per president into outDir; returns the index's users. */
export declare function makeSotu(outDir: string, options?: { words?: number; users?: string[]; packageDir?: string }): SotuIndexUser[];
