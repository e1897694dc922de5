// dawn.node (the `webgpu` package) settles a GPU promise (onSubmittedWorkDone, mapAsync, an async
// pipeline) only when it ticks the device, and while any such promise is pending it ticks from a
// chain of setImmediate callbacks (its AsyncRunner::QueueTick, which looks the global up on every
// tick): a busy loop that holds one CPU core for the whole wait. With a GPU that wastes a core;
// on SwiftShader, whose "GPU" is the other cores, it takes a core from the GPU itself (Node
// trained at 0.6-0.7x the browser's speed on a 2-core machine). While the engine waits on such a
// promise it routes that chain through setTimeout, so the binding polls the device every
// `intervalMs` and the thread sleeps in between. Only the engine's own waits are throttled: the
// global is put back when the last of them ends. Other code that calls setImmediate during a wait
// gets the same delay; clearImmediate clears either kind. Where there is no setImmediate (browsers)
// this does nothing.

// Node's timers, typed here: the library is also built without Node's types (for browsers).
interface ImmediateHost {
  setImmediate?: (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;
  clearImmediate?: (handle: unknown) => void;
}
const host = globalThis as unknown as ImmediateHost;

let waits = 0;
let saved: Required<ImmediateHost> | null = null;

function install(intervalMs: number): void {
  const clear = host.clearImmediate!;
  saved = { setImmediate: host.setImmediate!, clearImmediate: clear };
  host.setImmediate = (callback, ...args) => setTimeout(callback, intervalMs, ...args);
  // A Timeout has refresh(), an Immediate does not.
  host.clearImmediate = (handle) => {
    if (handle && typeof (handle as { refresh?: unknown }).refresh === 'function') clearTimeout(handle as ReturnType<typeof setTimeout>);
    else clear(handle);
  };
}

/** Waits for `promise` with dawn.node's device ticks spaced `intervalMs` apart (0: as the binding does). */
export async function waitWithTickInterval<T>(promise: Promise<T>, intervalMs: number): Promise<T> {
  if (intervalMs <= 0 || typeof host.setImmediate !== 'function') return promise;
  if (waits++ === 0) install(intervalMs);
  try {
    return await promise;
  } finally {
    if (--waits === 0 && saved) {
      host.setImmediate = saved.setImmediate;
      host.clearImmediate = saved.clearImmediate;
      saved = null;
    }
  }
}
