// The graph switch (DESIGN §8): a volfile edit of translator options or of the stack, applied to
// a running graph without failing a fop.
//
// The process state lives in a few stateful translators (their classes say `carried`): the
// brick's store, the lease, watch streams, the replication engine with its session table and
// deadlines, the listener with its connections. A switch carries those instances into the new
// graph instead of building them again, so the old graph's replicate *is* the new one's (it stops
// answering as the old graph's at the same instant it starts as the new one's). Every other
// translator (io-stats, protocol/client links) is built anew, and the old ones are torn down once
// the fops inside them have finished.
//
// Steps, each refusing before the next changes anything:
//  1. parse and validate the text as buildGraph does (errors name the file and line);
//  2. the membership guard (membership-guard.ts), against the previous text;
//  3. every carried translator of the running graph is still declared, with its type;
//  4. construct: carried ones reused, the rest new (constructors have no side effects);
//  5. reconfigure carried ones whose options changed (a refusal undoes those already applied);
//  6. init the new translators bottom-up (a failure finis them and undoes step 5);
//  7. relink every carried translator to its new subvolumes: new fops reach the new graph (a
//     relink that throws is undone with the rest);
//  --- the point of no return ---
//  8. wait (bounded) for the fops inside the old graph's other translators, then fini those.
import { coordError, isCoordError, type CoordError } from '../src/common/errors.js';
import { checkVolfile, constructGraph, type BuildOptions, type CheckedVolfile, type Graph } from './graph.js';
import { guardMembership } from './membership-guard.js';
import type { RawOptionValue } from './options.js';
import { changedOptions, type Translator } from './translator.js';
import type { VolfileDecl } from './volfile.js';

/** How long the old graph's translators may take to drain before they are torn down anyway. */
export const SWITCH_DRAIN_MS_DEFAULT = 30_000;

export interface SwitchOptions extends BuildOptions {
  /** The text the running graph was built from (or the master last wrote): the membership guard's reference. */
  readonly previousText: string;
  /** Bound on waiting for the old translators' fops (default SWITCH_DRAIN_MS_DEFAULT). */
  readonly drainMs?: number;
  /** Called once the new graph serves (step 7), before the old one drains: where callers point new fops. */
  readonly onSwitched?: (next: Graph) => void;
  /** A failure tearing down an old translator, after the switch succeeded. Default: ignored. */
  readonly onRetireError?: (e: unknown) => void;
}

/**
 * Switches the running graph `old` to the volfile `text`; resolves with the new graph once the
 * old translators are torn down. Refused (volfile-invalid, membership-edit, or a new
 * translator's init error) with `old` left exactly as it was and still serving.
 */
export async function switchGraph(old: Graph, text: string, opts: SwitchOptions): Promise<Graph> {
  if (!old.isUp) throw coordError('closed', `${opts.file}: the running graph is not up; nothing to switch`);
  const checked = checkVolfile(text, opts);
  guardMembership(previousOf(opts), checked, opts.file);
  const carried = carriedOf(old, opts);
  refuseDropped(carried, checked, opts.file);

  const reused = new Set<Translator>();
  const newChildren = new Map<Translator, readonly Translator[]>();
  const next = constructGraph(checked, opts, (d, _options, children) => {
    const t = carried.get(d.name);
    if (t === undefined || t.type !== d.type) return undefined;
    reused.add(t);
    newChildren.set(t, children);
    return t;
  });

  const undo = reconfigureCarried(next, reused, checked, opts.file);
  try {
    await next.initAround(reused);
  } catch (e) {
    undo();
    throw e;
  }

  try {
    relinkCarried(next, reused, newChildren);
  } catch (e) {
    // A relink override refused its new subvolumes: put everything back as it was.
    await next.finiExcept(reused).catch(() => undefined);
    undo();
    throw e;
  }
  opts.onSwitched?.(next);

  const retiring = old.translators.filter((t) => !reused.has(t));
  await drained(retiring, opts.drainMs ?? SWITCH_DRAIN_MS_DEFAULT);
  await old.finiExcept(reused).catch((e: unknown) => opts.onRetireError?.(e));
  return next;
}

/** The previous text, checked the same way; it built the running graph, so it must still pass. */
function previousOf(opts: SwitchOptions): CheckedVolfile {
  try {
    return checkVolfile(opts.previousText, opts);
  } catch (e) {
    throw coordError('internal', `${opts.file}: the text the running graph was built from no longer validates: ${(e as Error).message}`);
  }
}

/** The running graph's carried translators, by name. */
function carriedOf(old: Graph, opts: BuildOptions): ReadonlyMap<string, Translator> {
  return new Map(old.translators.filter((t) => opts.registry.get(t.type)?.carried === true).map((t) => [t.name, t]));
}

/**
 * A carried translator cannot be removed, renamed or retyped live: a second store, lock keeper
 * or engine on the same brick beside the old one would split the brick's state.
 */
function refuseDropped(carried: ReadonlyMap<string, Translator>, checked: CheckedVolfile, file: string): void {
  for (const t of carried.values()) {
    const d = checked.byName.get(t.name);
    if (d?.type === t.type) continue;
    const what = d ? `volume ${t.name}: type changed from ${t.type} to ${d.type}` : `volume ${t.name} (${t.type}) was removed or renamed`;
    const where = d ? `${file}:${d.typeLine}: ` : `${file}: `;
    throw coordError(
      'volfile-invalid',
      `${where}${what}, but it holds the running process's state (a graph switch keeps it); restart the master to change it`,
      { file, ...(d ? { line: d.typeLine } : {}), volume: t.name },
    );
  }
}

/**
 * Hands each reused translator whose options changed its new options (bottom-up). A refusal
 * undoes those already applied and rethrows, located at the option's line. Returns the undo.
 */
function reconfigureCarried(next: Graph, reused: ReadonlySet<Translator>, checked: CheckedVolfile, file: string): () => void {
  const applied: { readonly t: Translator; readonly before: Readonly<Record<string, RawOptionValue>> }[] = [];
  const undo = (): void => {
    // An override that took the change takes the old options back (its contract).
    for (const { t, before } of applied.reverse()) t.reconfigure(before);
  };
  for (const t of next.translators) {
    if (!reused.has(t)) continue;
    const d = checked.byName.get(t.name) as VolfileDecl;
    const options = checked.options.get(t.name) ?? {};
    if (changedOptions(t.rawOptions, options).length === 0) continue;
    const before = t.rawOptions;
    try {
      t.reconfigure(options);
    } catch (e) {
      undo();
      throw located(e, d, file);
    }
    applied.push({ t, before });
  }
  return undo;
}

/** A reconfigure refusal at the line of the option it names (else of the volume). */
function located(e: unknown, d: VolfileDecl, file: string): unknown {
  if (!isCoordError(e) || e.details['file'] !== undefined) return e;
  const option = e.details['option'];
  const line = d.options.find((o) => o.key === option)?.line ?? d.line;
  const err: CoordError = coordError(e.code, `${file}:${line}: ${e.message}`, { ...e.details, file, line });
  return err;
}

/**
 * Relinks every reused translator to its subvolumes in the new graph, bottom-up. If one throws,
 * those already relinked go back to their old subvolumes and the error is rethrown.
 */
function relinkCarried(next: Graph, reused: ReadonlySet<Translator>, newChildren: ReadonlyMap<Translator, readonly Translator[]>): void {
  const done: { readonly t: Translator; readonly before: readonly Translator[] }[] = [];
  try {
    for (const t of next.translators) {
      if (!reused.has(t)) continue;
      const before = t.children;
      t.relink(newChildren.get(t) ?? []);
      done.push({ t, before });
    }
  } catch (e) {
    for (const { t, before } of done.reverse()) t.relink(before);
    throw e;
  }
}

/** Resolves once none of `ts` has a fop inside, or after `ms` (then they are torn down anyway). */
async function drained(ts: readonly Translator[], ms: number): Promise<void> {
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => ((timedOut = true), resolve()), ms);
  });
  try {
    // Each whenIdle() resolves when its translator's count touches 0, and a fop arriving late
    // (a caller still holding the old top) may raise it again: check them all at one instant.
    while (!timedOut && !ts.every((t) => t.fopsInFlight === 0)) {
      await Promise.race([Promise.all(ts.map((t) => t.whenIdle())), timeout]);
    }
  } finally {
    clearTimeout(timer);
  }
}
