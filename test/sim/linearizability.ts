// A linearizability checker for a key-value map with compare-and-set, for the histories the
// deterministic simulator records from its clients.
//
// Keys are independent objects, so by P-compositionality a history is linearizable iff every
// key's sub-history is; each key is checked on its own with Wing & Gong / Lowe's just-in-time
// linearization search, as in the Porcupine checker: the calls and returns of the ops are kept in
// a doubly linked list ordered by time; the search linearizes a pending call that the model
// accepts, and backtracks when no call before the first remaining return can go next (that op had
// to take effect before it returned). A cache of the explored (linearized ops, model state) pairs,
// all of which failed, prunes revisits, which bounds the work by about (history length) x
// 2^(concurrency) x (distinct values).
//
// Reductions on top, each keeping at least one linearization if there is any:
// - values that no read returned and no cas expects are all alike to the model, so they share one
//   model state (OPAQUE);
// - a pending read-only op (a read, a failed cas) that is legal now goes next, without branching:
//   it changes nothing, so moving it earlier in a linearization keeps it valid;
// - ops with an unknown outcome have no return, so they are optional and may go last; once
//   invoked, those with the same effect are interchangeable, so only the earliest not yet
//   linearized of each group is tried. One is tried only where it changes the state and enables a
//   pending op (makes it legal, or makes a no-op unknown cas effective): in a linearization with
//   the fewest unknown ops, pushed as late as possible, every unknown op is like that. And a node
//   with the same linearized definite ops and state as an explored (failed) one, but more unknown
//   ops used up, has fewer options, so it fails too and is pruned.

export type KvOp =
  | { readonly f: 'put'; readonly key: string; readonly value: string }
  | { readonly f: 'delete'; readonly key: string }
  | { readonly f: 'get'; readonly key: string }
  /** Succeeds (writes value) iff the key's current value equals expect (undefined = the key is absent). */
  | { readonly f: 'cas'; readonly key: string; readonly expect: string | undefined; readonly value: string };

export type KvOutcome =
  | { readonly type: 'ok'; readonly value?: string | undefined; readonly succeeded?: boolean } // get: value (undefined = absent); cas: succeeded
  | { readonly type: 'fail' } // definitely did not take effect (e.g. refused before being applied)
  | { readonly type: 'unknown' }; // indeterminate / timed out: may or may not have taken effect, at any time after invoke

export interface HistoryOp {
  readonly id: number;
  readonly client: number;
  readonly op: KvOp;
  readonly invokeMs: number; // simulated time the client sent it
  readonly completeMs: number; // simulated time the client got the answer (ignored for 'unknown': treat as +infinity)
  readonly outcome: KvOutcome;
}

export interface LinResult {
  readonly ok: boolean;
  /** When not ok: the key whose sub-history has no linearization, and a short human explanation including the ops involved (ids, ops, times, outcomes) so a failing simulator seed can be debugged. */
  readonly key?: string;
  readonly explanation?: string;
}

const DEFAULT_MAX_STATES = 5_000_000;
/** How many ops of each kind an explanation lists, so a message stays readable. */
const EXPLAIN_LIMIT = 8;

/**
 * Checks that `history` is linearizable as a map of independent keys (each initially absent).
 * 'fail' ops and 'unknown' gets are ignored; other 'unknown' ops may take effect at any time
 * after their invoke, or never. Throws if the search visits more than `maxStates` states in
 * total (default 5,000,000) rather than give an answer it could not establish.
 */
export function checkLinearizable(history: readonly HistoryOp[], opts?: { maxStates?: number }): LinResult {
  const budget = { left: opts?.maxStates ?? DEFAULT_MAX_STATES, max: opts?.maxStates ?? DEFAULT_MAX_STATES };
  const seen = new Set<number>();
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    validate(h);
    if (seen.has(h.id)) throw new Error(`linearizability: duplicate op id ${h.id}`);
    seen.add(h.id);
    if (h.outcome.type === 'fail') continue; // it had no effect
    if (h.outcome.type === 'unknown' && h.op.f === 'get') continue; // an unanswered read constrains nothing
    let ops = byKey.get(h.op.key);
    if (!ops) byKey.set(h.op.key, (ops = []));
    ops.push(h);
  }
  for (const [key, ops] of byKey) {
    const explanation = checkKey(key, ops, budget);
    if (explanation !== undefined) return { ok: false, key, explanation };
  }
  return { ok: true };
}

function validate(h: HistoryOp): void {
  if (!Number.isFinite(h.invokeMs)) throw new Error(`linearizability: op #${h.id} has invokeMs ${h.invokeMs}`);
  if (h.outcome.type === 'unknown') return;
  if (!Number.isFinite(h.completeMs) || h.completeMs < h.invokeMs) {
    throw new Error(`linearizability: op #${h.id} completes at ${h.completeMs} ms, before its invoke at ${h.invokeMs} ms`);
  }
  if (h.outcome.type === 'ok' && h.op.f === 'cas' && typeof h.outcome.succeeded !== 'boolean') {
    throw new Error(`linearizability: op #${h.id} is a cas with outcome ok but no succeeded flag`);
  }
}

// Model states are small integers: the key is absent, holds some value no op can observe, or
// holds one of the observable values (those a definite read returned or a CAS expects).
const ABSENT = 0;
const OPAQUE = 1;
const ILLEGAL = -1;

/** One op of a key's sub-history, compiled for the search. */
interface Prepared {
  readonly h: HistoryOp;
  /** Has a return event (ok outcome); unknown ops may be linearized late or never. */
  readonly definite: boolean;
  /** put / cas: the state written; get: the state it must observe. */
  readonly arg: number;
  /** cas: the state it compares against. */
  readonly expect: number;
  readonly succeeded: boolean;
  /** A definite op that leaves the state as it is whenever it is legal (a read, a failed cas). */
  readonly readOnly: boolean;
  /** Its index among the key's definite ops, or among its unknown ops. */
  readonly index: number;
}

/** The model: the state after `p` in `state`, or ILLEGAL if its recorded outcome is impossible there. */
function step(p: Prepared, state: number): number {
  switch (p.h.op.f) {
    case 'put':
      return p.arg;
    case 'delete':
      return ABSENT;
    case 'get':
      return state === p.arg ? state : ILLEGAL;
    case 'cas': {
      const matches = state === p.expect;
      if (p.definite && matches !== p.succeeded) return ILLEGAL;
      return matches ? p.arg : state;
    }
  }
}

interface KeyOps {
  /** Every op kept, by invoke time. */
  readonly all: readonly Prepared[];
  /** The definite ops, by invoke time. */
  readonly definite: readonly Prepared[];
  /** The unknown ops grouped by effect, each group by invoke time, the groups by their first op's. */
  readonly classes: readonly (readonly Prepared[])[];
}

/** Orders ops by invoke and compiles them against the key's observable values. */
function prepare(history: readonly HistoryOp[]): KeyOps {
  const sorted = [...history].sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id);
  const ids = new Map<string, number>();
  for (const h of sorted) {
    const observed = h.op.f === 'get' ? (h.outcome.type === 'ok' ? h.outcome.value : undefined) : h.op.f === 'cas' ? h.op.expect : undefined;
    if (observed !== undefined && !ids.has(observed)) ids.set(observed, ids.size + 2);
  }
  const stateOf = (v: string | undefined): number => (v === undefined ? ABSENT : (ids.get(v) ?? OPAQUE));
  const all: Prepared[] = [];
  const definite: Prepared[] = [];
  const classes = new Map<string, Prepared[]>();
  let unknowns = 0;
  for (const h of sorted) {
    const op = h.op;
    const isDefinite = h.outcome.type === 'ok';
    const succeeded = h.outcome.type === 'ok' && h.outcome.succeeded === true;
    const arg = op.f === 'put' || op.f === 'cas' ? stateOf(op.value) : op.f === 'get' && h.outcome.type === 'ok' ? stateOf(h.outcome.value) : ABSENT;
    const expect = op.f === 'cas' ? stateOf(op.expect) : ABSENT;
    const readOnly = isDefinite && (op.f === 'get' || (op.f === 'cas' && (!succeeded || expect === arg)));
    const p = { h, definite: isDefinite, arg, expect, succeeded, readOnly, index: isDefinite ? definite.length : unknowns++ };
    all.push(p);
    if (isDefinite) {
      definite.push(p);
    } else {
      const effect = `${op.f}:${arg}:${expect}`;
      const group = classes.get(effect);
      if (group) group.push(p);
      else classes.set(effect, [p]);
    }
  }
  return { all, definite, classes: [...classes.values()] };
}

/** A node of the search: a partial linearization, and the moves still to try from it. */
interface SearchNode {
  readonly state: number;
  /**
   * The linearized definite ops: all those below index low, and bit j of above for op low + j
   * (real-time order keeps this window about as wide as the concurrency, so the cache stays
   * small); linHash is the Zobrist hash of the set.
   */
  readonly low: number;
  readonly above: bigint;
  readonly linHash: number;
  /** The linearized unknown ops (bit per index). */
  readonly unk: bigint;
  /** The definite op with the earliest return not yet linearized: no op invoked after that return can go next. */
  readonly frontier: Prepared | undefined;
  /** Moves: a definite op's index, or -(class + 1) for the next op of an unknown class. */
  readonly moves: readonly number[];
  cursor: number;
  /** The move to the child being explored, undone when the search comes back. */
  taken: { readonly move: number; readonly op: Prepared } | undefined;
}

/** Returns undefined if the key's sub-history is linearizable, else an explanation. */
function checkKey(key: string, history: readonly HistoryOp[], budget: { left: number; readonly max: number }): string | undefined {
  const { all, definite, classes } = prepare(history);

  // The event list of the definite ops: a call and a return each, by time; at equal times calls
  // come first, since an op that completes at t does not precede one invoked at t.
  const events: { readonly op: number; readonly call: boolean; readonly t: number }[] = [];
  for (const p of definite) events.push({ op: p.index, call: true, t: p.h.invokeMs }, { op: p.index, call: false, t: p.h.completeMs });
  events.sort((a, b) => a.t - b.t || Number(b.call) - Number(a.call) || a.op - b.op);
  const list = new Links(events.length);
  const callNode = new Int32Array(definite.length);
  const returnNode = new Int32Array(definite.length);
  events.forEach((ev, e) => {
    (ev.call ? callNode : returnNode)[ev.op] = e;
  });

  // How many ops of each unknown class are linearized: always its earliest ones, since once
  // invoked, ops with the same effect and no return are interchangeable. Classes with none left
  // are unlinked from `live`.
  const taken = new Int32Array(classes.length);
  const live = new Links(classes.length);
  const done = new Uint8Array(definite.length); // linearized definite ops
  let pending = definite.length;
  const play = (move: number, undo: boolean): void => {
    if (move < 0) {
      const c = -move - 1;
      const size = classes[c]!.length;
      if (undo && taken[c] === size) live.restore(c);
      taken[c] = taken[c]! + (undo ? -1 : 1);
      if (!undo && taken[c] === size) live.remove(c);
    } else if (undo) {
      list.restore(returnNode[move]!);
      list.restore(callNode[move]!);
      done[move] = 0;
      pending++;
    } else {
      list.remove(callNode[move]!);
      list.remove(returnNode[move]!);
      done[move] = 1;
      pending--;
    }
  };

  // The moves from the current partial linearization: the definite ops invoked before the
  // frontier returned, then the unknown ops invoked by then (the next of each class).
  const expand = (state: number, low: number, above: bigint, linHash: number, unk: bigint): SearchNode => {
    let frontier: Prepared | undefined;
    const moves: number[] = [];
    for (let e = list.first(); e >= 0; e = list.after(e)) {
      const ev = events[e]!;
      if (!ev.call) {
        frontier = definite[ev.op];
        break;
      }
      moves.push(ev.op);
    }
    // Earliest deadline first: a heuristic that finds a linearization with less backtracking.
    moves.sort((a, b) => definite[a]!.h.completeMs - definite[b]!.h.completeMs);
    // A read-only op that is legal now can be linearized now without losing any solution (it
    // changes no state, and nothing still pending had to precede it), so it is the only move tried.
    const forced = moves.find((i) => definite[i]!.readOnly && step(definite[i]!, state) !== ILLEGAL);
    if (forced !== undefined) return { state, low, above, linHash, unk, frontier, moves: [forced], cursor: 0, taken: undefined };
    // Unknown ops (the next of each class invoked by the frontier's return) are tried last, and
    // only one that enables a pending op: some linearization, if any, has every unknown op it
    // keeps right before an op it enables (one that was illegal, or a no-op unknown cas, before
    // it); otherwise the unknown op could be moved later or dropped.
    const limit = frontier ? frontier.h.completeMs : Infinity;
    const needed: number[] = []; // states that would enable a pending op
    let anyChange = false; // a failed cas is pending while the state equals its expect
    for (const i of moves) {
      const p = definite[i]!;
      if (step(p, state) !== ILLEGAL) continue;
      if (p.h.op.f === 'get') needed.push(p.arg);
      else if (p.succeeded) needed.push(p.expect);
      else anyChange = true;
    }
    const leaders: number[] = [];
    for (let c = live.first(); c >= 0; c = live.after(c)) {
      const group = classes[c]!;
      if (group[0]!.h.invokeMs > limit) break;
      const u = group[taken[c]!]!;
      if (u.h.invokeMs > limit) continue;
      leaders.push(c);
      if (u.h.op.f === 'cas' && u.expect !== u.arg && u.expect !== state) needed.push(u.expect);
    }
    if (anyChange || needed.length > 0) {
      for (const c of leaders) {
        const after = step(classes[c]![taken[c]!]!, state);
        if (after !== state && (anyChange || needed.includes(after))) moves.push(-c - 1);
      }
    }
    return { state, low, above, linHash, unk, frontier, moves, cursor: 0, taken: undefined };
  };

  const visited = new Visited();
  const stack: SearchNode[] = [expand(ABSENT, 0, 0n, 0, 0n)];
  let best: { path: Prepared[]; stuck: Prepared | undefined } | undefined;
  while (pending > 0) {
    const node = stack[stack.length - 1]!;
    if (node.taken) play(node.taken.move, true);
    node.taken = undefined;
    const move = node.moves[node.cursor++];
    if (move === undefined) {
      // A dead end: no move from here reaches a full linearization.
      if (!best || stack.length - 1 > best.path.length) best = { path: stack.slice(0, -1).map((n) => n.taken!.op), stuck: node.frontier };
      stack.pop();
      if (stack.length === 0) return explain(key, all, best);
      continue;
    }
    const p = move < 0 ? classes[-move - 1]![taken[-move - 1]!]! : definite[move]!;
    const after = step(p, node.state);
    // An unknown op that would change nothing is better left for later, or never.
    if (after === ILLEGAL || (!p.definite && after === node.state)) continue;
    let { low, above, linHash, unk } = node;
    if (p.definite) {
      above |= 1n << BigInt(p.index - low);
      linHash ^= mix32(p.index + 1);
      if (p.index === low) {
        let k = low + 1;
        while (done[k] === 1) k++;
        above >>= BigInt(k - low);
        low = k;
      }
    } else {
      unk |= 1n << BigInt(p.index);
    }
    if (!visited.add(low, above, linHash, after, unk)) continue;
    if (--budget.left < 0) {
      throw new Error(
        `linearizability check too large: more than maxStates=${budget.max} states visited (at key ${JSON.stringify(key)}, ${all.length} ops); shorten the history or raise maxStates`,
      );
    }
    play(move, false);
    node.taken = { move, op: p };
    stack.push(expand(after, low, above, linHash, unk));
  }
  return undefined;
}

/** A doubly linked list of 0..size-1 in order, with removals undone in reverse order (dancing links: a removed node keeps its neighbours). */
class Links {
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly head: number;

  constructor(size: number) {
    this.head = size;
    this.next = new Int32Array(size + 1);
    this.prev = new Int32Array(size + 1);
    for (let e = 0; e < size; e++) {
      this.next[e] = e + 1 < size ? e + 1 : -1;
      this.prev[e] = e === 0 ? size : e - 1;
    }
    this.next[size] = size > 0 ? 0 : -1;
  }

  /** The first node still listed, or -1. */
  first(): number {
    return this.next[this.head]!;
  }
  /** The node listed after e, or -1. */
  after(e: number): number {
    return this.next[e]!;
  }
  remove(e: number): void {
    const n = this.next[e]!;
    this.next[this.prev[e]!] = n;
    if (n >= 0) this.prev[n] = this.prev[e]!;
  }
  restore(e: number): void {
    const n = this.next[e]!;
    this.next[this.prev[e]!] = e;
    if (n >= 0) this.prev[n] = e;
  }
}

/**
 * The explored (linearized definite ops, state, linearized unknown ops) triples; every one of them
 * failed, since the search stops at the first success. A triple is dominated by an explored one
 * with the same definite ops and state and fewer unknown ops linearized (those could still be
 * linearized later), so it fails too. Buckets are keyed by a 32-bit hash because V8 hashes BigInt
 * Map/Set keys poorly; the bitsets are only compared inside a bucket.
 */
class Visited {
  private readonly buckets = new Map<number, { readonly low: number; readonly above: bigint; readonly state: number; unks: bigint[] }[]>();

  /** Records the triple; false if it or one dominating it was explored already. */
  add(low: number, above: bigint, linHash: number, state: number, unk: bigint): boolean {
    const h = (linHash ^ mix32(state + 0x51ed27)) | 0;
    let bucket = this.buckets.get(h);
    if (!bucket) this.buckets.set(h, (bucket = []));
    const entry = bucket.find((b) => b.state === state && b.low === low && b.above === above);
    if (!entry) {
      bucket.push({ low, above, state, unks: [unk] });
      return true;
    }
    if (entry.unks.some((u) => (u & unk) === u)) return false;
    entry.unks = entry.unks.filter((u) => (u & unk) !== unk); // drop the ones this one dominates
    entry.unks.push(unk);
    return true;
  }
}

/** murmur3's finalizer: a well-spread 32-bit hash of an integer. */
function mix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

// ---- explanations ------------------------------------------------------------------------

const show = (v: string | undefined): string => (v === undefined ? 'absent' : JSON.stringify(v));

function describe(h: HistoryOp): string {
  const o = h.op;
  const k = JSON.stringify(o.key);
  const call =
    o.f === 'put' ? `put(${k}, ${show(o.value)})` : o.f === 'delete' ? `delete(${k})` : o.f === 'get' ? `get(${k})` : `cas(${k}, expect ${show(o.expect)}, ${show(o.value)})`;
  let result: string;
  if (h.outcome.type === 'ok') {
    result = o.f === 'get' ? `-> ${show(h.outcome.value)}` : o.f === 'cas' ? `-> ${h.outcome.succeeded === true ? 'succeeded' : 'failed'}` : '-> ok';
  } else {
    result = `-> ${h.outcome.type}`;
  }
  const until = h.outcome.type === 'unknown' ? '?' : `${h.completeMs}`;
  return `#${h.id} client ${h.client} ${call} ${result} [${h.invokeMs}..${until} ms]`;
}

/** The real value after applying h (the search itself only tracks observable values). */
function valueAfter(h: HistoryOp, v: string | undefined): string | undefined {
  const o = h.op;
  if (o.f === 'put') return o.value;
  if (o.f === 'delete') return undefined;
  if (o.f === 'cas') return v === o.expect ? o.value : v;
  return v;
}

/** Lists at most EXPLAIN_LIMIT lines, saying how many were left out. */
function capped(lines: readonly string[], fromEnd: boolean): string[] {
  if (lines.length <= EXPLAIN_LIMIT) return [...lines];
  const kept = fromEnd ? lines.slice(-EXPLAIN_LIMIT) : lines.slice(0, EXPLAIN_LIMIT);
  const note = `  ... ${lines.length - EXPLAIN_LIMIT} more`;
  return fromEnd ? [note, ...kept] : [...kept, note];
}

/** Explains the deepest dead end the search met: the longest partial linearization and the op that could not follow it. */
function explain(key: string, ops: readonly Prepared[], best: { readonly path: readonly Prepared[]; readonly stuck: Prepared | undefined }): string {
  let value: string | undefined;
  const steps: string[] = [];
  for (const p of best.path) {
    value = valueAfter(p.h, value);
    steps.push(`  ${describe(p.h)}   => ${show(value)}`);
  }
  const lines = [`key ${JSON.stringify(key)}: no linearization of its ${ops.length} ops (failed ops and unanswered reads dropped).`];
  lines.push(`The longest partial linearization found orders ${best.path.length} ops and leaves the key ${show(value)}.`);
  lines.push(best.path.length > 0 ? 'Its last ops (value after each):' : 'It is empty.', ...capped(steps, true));
  const stuck = best.stuck;
  if (stuck) {
    lines.push('Then this op must take effect before it returns, but no order of the ops still pending allows it:', `  ${describe(stuck.h)}`);
    const inPath = new Set(best.path);
    const s = stuck.h;
    const overlapping = ops.filter((p) => p !== stuck && !inPath.has(p) && p.h.invokeMs <= s.completeMs && (!p.definite || p.h.completeMs >= s.invokeMs));
    // The definite ones first; then the unknown ones, latest first (old ones are mostly noise).
    overlapping.sort((a, b) => Number(b.definite) - Number(a.definite) || (a.definite ? a.h.invokeMs - b.h.invokeMs : b.h.invokeMs - a.h.invokeMs));
    lines.push(overlapping.length > 0 ? 'Ops overlapping it, not in the partial linearization:' : 'No op overlaps it.', ...capped(overlapping.map((p) => `  ${describe(p.h)}`), false));
    // For a read (or a cas), where the value it needs could have come from.
    const needed = s.op.f === 'get' && s.outcome.type === 'ok' ? s.outcome.value : s.op.f === 'cas' && s.outcome.type === 'ok' && s.outcome.succeeded === true ? s.op.expect : undefined;
    if (needed !== undefined) {
      const writers = ops.filter((p) => (p.h.op.f === 'put' || p.h.op.f === 'cas') && p.h.op.value === needed);
      lines.push(writers.length > 0 ? `Ops writing ${show(needed)}:` : `No op (other than failed ones) writes ${show(needed)}.`, ...capped(writers.map((p) => `  ${describe(p.h)}`), false));
    }
  }
  return lines.join('\n');
}
