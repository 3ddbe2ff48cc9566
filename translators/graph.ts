// Building a translator graph from a volfile: parse, validate the whole graph against the
// registry of translator types (so a bad volfile is refused before any translator exists), then
// construct bottom-up. The Graph owns the lifecycle: init bottom-up, fini top-down. The steps are
// separate (checkVolfile, constructGraph, Graph.initAround/finiExcept) because a graph switch
// (graph-switch.ts) runs them with running translators carried in.
import { readFile } from 'node:fs/promises';
import { assert } from '../src/common/assert.js';
import { coordError } from '../src/common/errors.js';
import { parseOptions, type RawOptionValue } from './options.js';
import type { GraphEnv, Translator, TranslatorClass } from './translator.js';
import { parseVolfile, volfileError, type VolfileDecl } from './volfile.js';

/** Translator types by their volfile type name. */
export type Registry = ReadonlyMap<string, TranslatorClass>;

export function createRegistry(classes: readonly TranslatorClass[]): Registry {
  const registry = new Map<string, TranslatorClass>();
  for (const cls of classes) {
    assert(!registry.has(cls.type), `translator type ${cls.type} registered twice`);
    registry.set(cls.type, cls);
  }
  return registry;
}

export interface BuildOptions {
  /** Named in every error message; usually the volfile's path. */
  readonly file: string;
  readonly registry: Registry;
  readonly env: GraphEnv;
}

export class Graph {
  private readonly byName: ReadonlyMap<string, Translator>;
  /** Translators whose init() succeeded, in init order: exactly the ones fini() must tear down. */
  private up: Translator[] = [];
  private state: 'new' | 'initing' | 'up' | 'down' = 'new';

  constructor(
    readonly top: Translator,
    /** Bottom-up: every translator comes after all of its subvolumes. */
    readonly translators: readonly Translator[],
  ) {
    this.byName = new Map(translators.map((t) => [t.name, t]));
  }

  get(name: string): Translator | undefined {
    return this.byName.get(name);
  }

  /** Inited and not yet torn down. */
  get isUp(): boolean {
    return this.state === 'up';
  }

  /** Inits bottom-up, so each translator starts with its subvolumes already up. */
  async init(): Promise<void> {
    await this.initAround(new Set());
  }

  /**
   * Inits bottom-up every translator but those in `running`: translators a graph switch carried
   * over from the graph before, already up, which join this one as they are (and which this
   * graph's fini() tears down from now on). On a failure, finis only what this call inited, so
   * the running ones are left exactly as they were, and rethrows.
   */
  async initAround(running: ReadonlySet<Translator>): Promise<void> {
    assert(this.state === 'new', `graph init() called in state ${this.state}`);
    this.state = 'initing';
    try {
      for (const t of this.translators) {
        if (!running.has(t)) await t.init();
        this.up.push(t);
      }
      this.state = 'up';
    } catch (e) {
      // The init failure is the error worth reporting; a teardown failure after it is secondary.
      await this.finiExcept(running).catch(() => undefined);
      throw e;
    }
  }

  /** Finis top-down (parents stop using a child before it goes), past failures; rethrows the first. */
  async fini(): Promise<void> {
    await this.finiExcept(new Set());
  }

  /**
   * Finis top-down every translator this graph owns but those in `kept` (a graph switch carried
   * them into the new graph, which owns them now), past failures; rethrows the first. The graph
   * owns nothing afterwards.
   */
  async finiExcept(kept: ReadonlySet<Translator>): Promise<void> {
    this.state = 'down';
    const up = this.up;
    this.up = [];
    let first: { error: unknown } | undefined;
    for (const t of up.reverse()) {
      if (kept.has(t)) continue;
      try {
        await t.fini();
      } catch (error) {
        first ??= { error };
      }
    }
    if (first) throw first.error;
  }
}

/** A volfile that parsed and validated: its declarations, their parsed options and the top. */
export interface CheckedVolfile {
  readonly decls: readonly VolfileDecl[];
  readonly byName: ReadonlyMap<string, VolfileDecl>;
  /** Each volume's options, parsed against its type's table, defaults filled in. */
  readonly options: ReadonlyMap<string, Readonly<Record<string, RawOptionValue>>>;
  readonly top: VolfileDecl;
}

/** Parses and validates a volfile against the registry; every error names the file and line. */
export function checkVolfile(text: string, opts: BuildOptions): CheckedVolfile {
  const decls = parseVolfile(text, opts.file);
  const byName = new Map(decls.map((d) => [d.name, d]));
  const options = new Map<string, Record<string, RawOptionValue>>();
  for (const d of decls) options.set(d.name, checkVolume(d, byName, opts));
  const top = checkShape(decls, byName, opts.file);
  return { decls, byName, options, top };
}

/**
 * Returns a running translator to put in the graph in place of a new one for declaration `d`
 * (a graph switch's carried translators), or undefined to build one. `children` are its
 * subvolumes in the graph being built, for the switch to relink it to later.
 */
export type Reuse = (d: VolfileDecl, options: Readonly<Record<string, RawOptionValue>>, children: readonly Translator[]) => Translator | undefined;

/**
 * Constructs a checked volfile's translators bottom-up (none is inited), taking `reuse`'s where
 * it has one. Translators of types that are not carried count their fops in flight, so that a
 * later graph switch can tell when they have drained.
 */
export function constructGraph(checked: CheckedVolfile, opts: BuildOptions, reuse?: Reuse): Graph {
  // Post-order from the top: children (in subvolumes order) before their parent.
  const order: Translator[] = [];
  const construct = (d: VolfileDecl): Translator => {
    const children = d.subvolumes.map((s) => construct(mustGet(checked.byName, s.name)));
    const cls = mustGet(opts.registry, d.type);
    const options = mustGet(checked.options, d.name);
    let t = reuse?.(d, options, children);
    if (t === undefined) {
      t = cls.create({ name: d.name, type: d.type, options, children, env: opts.env });
      if (cls.carried !== true) t.countInFlight();
    }
    order.push(t);
    return t;
  };
  const root = construct(checked.top);
  assert(order.length === checked.decls.length, 'every volume is built exactly once');
  return new Graph(root, order);
}

export function buildGraph(text: string, opts: BuildOptions): Graph {
  return constructGraph(checkVolfile(text, opts), opts);
}

/** Per-volume checks: the type exists, its subvolumes exist and their count fits, options parse. */
function checkVolume(d: VolfileDecl, byName: ReadonlyMap<string, VolfileDecl>, opts: BuildOptions): Record<string, RawOptionValue> {
  const cls = opts.registry.get(d.type);
  if (!cls) {
    const known = [...opts.registry.keys()].sort().join(', ');
    throw volfileError(opts.file, d.typeLine, `volume ${d.name}: unknown type ${d.type}; known types: ${known || '(none)'}`);
  }
  for (const s of d.subvolumes) {
    if (!byName.has(s.name)) throw volfileError(opts.file, s.line, `volume ${d.name}: subvolume ${s.name} is not defined`);
  }
  const { min, max } = cls.subvolumes;
  const n = d.subvolumes.length;
  if (n < min || n > max) {
    const range = min === max ? `exactly ${min}` : `${min} to ${max}`;
    throw volfileError(opts.file, d.subvolumes[0]?.line ?? d.line, `volume ${d.name}: type ${d.type} takes ${range} subvolumes, given ${n}`);
  }
  return parseOptions(cls.options, d.options, { file: opts.file, volume: d.name, line: d.line });
}

/** Whole-graph checks: no cycle, no shared subvolume, exactly one top. Returns the top. */
function checkShape(decls: readonly VolfileDecl[], byName: ReadonlyMap<string, VolfileDecl>, file: string): VolfileDecl {
  // Depth-first search; meeting a volume still on the path closes a cycle.
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (d: VolfileDecl): void => {
    if (done.has(d.name)) return;
    path.push(d.name);
    for (const s of d.subvolumes) {
      const at = path.indexOf(s.name);
      if (at >= 0) {
        const cycle = [...path.slice(at), s.name].join(' -> ');
        throw volfileError(file, s.line, `volume ${d.name}: subvolume ${s.name} makes a cycle: ${cycle}`);
      }
      visit(mustGet(byName, s.name));
    }
    path.pop();
    done.add(d.name);
  };
  for (const d of decls) visit(d);

  const parent = new Map<string, string>();
  for (const d of decls) {
    for (const s of d.subvolumes) {
      const other = parent.get(s.name);
      if (other !== undefined) throw volfileError(file, s.line, `volume ${s.name} is a subvolume of both ${other} and ${d.name}`);
      parent.set(s.name, d.name);
    }
  }
  const tops = decls.filter((d) => !parent.has(d.name));
  const first = tops[0];
  // With no cycle there is always a top; more than one means several disconnected graphs.
  assert(first, 'an acyclic graph has a top');
  if (tops.length > 1) {
    throw volfileError(file, first.line, `the volfile has ${tops.length} top volumes (${tops.map((d) => d.name).join(', ')}); a graph has exactly one`);
  }
  return first;
}

function mustGet<K, V>(map: ReadonlyMap<K, V>, key: K): V {
  const v = map.get(key);
  assert(v !== undefined, `validated name ${String(key)} is present`);
  return v;
}

/** Reads and builds a volfile; an unreadable file is a volfile error naming the path. */
export async function loadGraph(path: string, opts: Omit<BuildOptions, 'file'>): Promise<Graph> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw coordError('volfile-invalid', `${path}: cannot read the volfile: ${why}`, { file: path });
  }
  return buildGraph(text, { ...opts, file: path });
}
