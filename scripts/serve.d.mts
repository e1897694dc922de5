// Types of scripts/serve.mjs, for the TypeScript files that import it.

/** Where /data/fashion-mnist/ is served from. */
export declare function fashionMnistDir(): string;

/** Where /data/mnist/ is served from. */
export declare function mnistDir(): string;

/** Where /data/sotu/ is served from. */
export declare function sotuDir(): string;

/** Starts the server; port 0 picks a free one. */
export declare function startServer(options?: { port?: number; root?: string }): Promise<{
  url: string;
  port: number;
  dataDir: string;
  mnistDir: string;
  sotuDir: string;
  close(): Promise<void>;
}>;
