// A small argument parser: positionals, `--flag value`, `--flag=value`, boolean flags and short aliases.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  /** option name without dashes, e.g. "temp" */
  name: string;
  /** one-letter alias without the dash, e.g. "n" */
  short?: string;
  /** true when the option takes no value */
  boolean?: boolean;
  /** may be given more than once (values collected in order) */
  multiple?: boolean;
  description: string;
}

export interface ParsedArgs {
  positionals: string[];
  options: Map<string, string | boolean | string[]>;
}

export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const positionals: string[] = [];
  const options = new Map<string, string | boolean | string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break; }
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      spec = byName.get(name);
      if (!spec) throw new UsageError(`unknown option --${name}`);
    } else if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) {
      spec = byShort.get(arg.slice(1));
      if (!spec) throw new UsageError(`unknown option ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    if (spec.boolean) {
      if (inline !== undefined) throw new UsageError(`--${spec.name} takes no value`);
      options.set(spec.name, true);
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${spec.name} needs a value`);
    if (spec.multiple) {
      const list = (options.get(spec.name) as string[] | undefined) ?? [];
      list.push(value);
      options.set(spec.name, list);
    } else {
      options.set(spec.name, value);
    }
  }
  return { positionals, options };
}

export function optString(args: ParsedArgs, name: string): string | undefined {
  const v = args.options.get(name);
  return typeof v === 'string' ? v : undefined;
}

export function optList(args: ParsedArgs, name: string): string[] {
  const v = args.options.get(name);
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

export function optBool(args: ParsedArgs, name: string): boolean {
  return args.options.get(name) === true;
}

/** an option whose value must be one of `allowed` */
export function optOneOf<T extends string>(args: ParsedArgs, name: string, allowed: readonly T[]): T | undefined {
  const v = optString(args, name);
  if (v !== undefined && !allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${v}"`);
  return v as T | undefined;
}

export function optNumber(args: ParsedArgs, name: string): number | undefined {
  const v = optString(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
}

export function optInt(args: ParsedArgs, name: string): number | undefined {
  const n = optNumber(args, name);
  if (n !== undefined && !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got ${n}`);
  return n;
}

/** Help text lines for a list of options. */
export function describeOptions(specs: readonly OptionSpec[]): string {
  return specs
    .map((s) => {
      const flag = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.boolean ? '' : ' V'}`;
      return `  ${flag.padEnd(28)} ${s.description}`;
    })
    .join('\n');
}
