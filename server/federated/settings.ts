// Command-line settings of the Node programs (fl:server, fl:client): `--name value` pairs, each
// name one the program knows, read as text or as a finite number.

export interface ProgramSettings {
  /** The value given, else the fallback. */
  text(name: string, fallback: string): string;
  /** The value given, which must be there. */
  required(name: string): string;
  /** The value given as a finite number, else the fallback. */
  number(name: string, fallback: number): number;
  /** Whether the setting was given. */
  has(name: string): boolean;
}

/** Reads `argv` as `--name value` pairs, refusing a dangling name, an unknown one and a number that is not one. */
export function programSettings(program: string, argv: readonly string[], known: readonly string[]): ProgramSettings {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!.startsWith('--') ? argv[i]!.slice(2) : '';
    const value = argv[i + 1];
    if (!name || value === undefined) throw new Error(`${program}: expected --name value pairs, got "${argv.slice(i).join(' ')}"`);
    given.set(name, value);
  }
  const unknown = [...given.keys()].filter((k) => !known.includes(k));
  if (unknown.length) throw new Error(`${program}: unknown setting ${unknown.map((k) => `--${k}`).join(', ')}; known: ${known.map((k) => `--${k}`).join(' ')}`);
  return {
    text: (name, fallback) => given.get(name) ?? fallback,
    required(name) {
      const v = given.get(name);
      if (v === undefined) throw new Error(`${program}: --${name} is required`);
      return v;
    },
    number(name, fallback) {
      const v = Number(given.get(name) ?? fallback);
      if (!Number.isFinite(v)) throw new Error(`${program}: --${name} ${given.get(name)} is not a number`);
      return v;
    },
    has: (name) => given.has(name),
  };
}
