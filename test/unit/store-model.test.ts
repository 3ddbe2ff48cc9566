// Model-based property test of the client-facing key-value semantics (DESIGN §3): random op
// sequences run against an embedded volume on storage/lmdb, the same graph on storage/memory,
// and the plain model in ./model.ts. Every result (values as hex, errors as their code) must be
// identical in all three, and at the end every rev still in history must read the same.
//
// Reproduce a failure with the seed fast-check prints:
//   MODEL_SEED=<seed> MODEL_RUNS=<n> npx vitest run test/unit/store-model.test.ts
import { Buffer } from 'node:buffer';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { isCoordError, openVolume, type EmbeddedVolume, type Volume } from '../../src/client/index.js';
import { compareKeys } from '../../src/common/keys.js';
import { singleBrickVolfile } from '../../src/daemon/volfiles.js';
import { Model, ModelError, type ModelCompare, type ModelRangeQuery, type ModelSelector, type ModelTxnOp } from './model.js';

// --- the key pool --------------------------------------------------------------------------------

/** Short paths, including the '/a/b' < '/a/b-c' < '/a/b/x' trap and keys whose byte order differs from UTF-16 order. */
const SHORT_KEYS = ['/a', '/a/b', '/a/b-c', '/a/b/x', '/a/c', '/b', '/é', '/\u{1F600}', '/\uFFFD', '/\uE000', '/a/\u{1F600}', '/a/\uFFFD', '/a/é'];
const LONG_PREFIX = '/long/';
/** 1900 bytes: the longest key stored under its own bytes (store/keys.ts). */
const K1900 = LONG_PREFIX + 'x'.repeat(1894);
const LONG_BASE = LONG_PREFIX + 'x'.repeat(1950);
/** 1901 bytes with 'é' straddling the 1900-byte cut. */
const STRADDLE = LONG_PREFIX + 'x'.repeat(1893) + 'é';
const LONG_KEYS = [
  K1900,
  K1900 + 'x',
  LONG_BASE,
  LONG_BASE + '1',
  LONG_BASE + '2',
  LONG_BASE + '\u{1F600}',
  LONG_BASE + '\uFFFD',
  STRADDLE,
  STRADDLE + 'a',
  LONG_PREFIX + 'x'.repeat(1000) + 'y' + 'x'.repeat(950),
];
const RESERVED_KEY = '/_coordvol/x';

const shortKey = fc.constantFrom(...SHORT_KEYS);
const longKey = fc.constantFrom(...LONG_KEYS);
/** A key a client may write: mostly short, sometimes long. */
const keyArb = fc.oneof({ arbitrary: shortKey, weight: 8 }, { arbitrary: longKey, weight: 2 });
/** A key to write that is occasionally refused (reserved or empty). */
const writeKeyArb = fc.oneof({ arbitrary: keyArb, weight: 30 }, { arbitrary: fc.constantFrom(RESERVED_KEY, ''), weight: 1 });
/** Any key to read (reserved keys are readable). */
const readKeyArb = fc.oneof({ arbitrary: keyArb, weight: 20 }, { arbitrary: fc.constantFrom(RESERVED_KEY, ''), weight: 1 });

const PREFIXES = ['', '/', '/a', '/a/', '/a/b', '/a/b/', '/b', '/é', '/\u{1F600}', LONG_PREFIX, K1900, LONG_BASE, LONG_PREFIX + 'x'.repeat(1893)];
/** Parents for `children`: paths ending in '/', so every next segment is a real name. */
const CHILD_PREFIXES = ['/', '/a/', '/a/b/', LONG_PREFIX];
// '/_coordvol' (no slash): a range that spans the reserved records, which skips them. A range
// starting inside '/_coordvol/' shows the volume's own records (tests/unit/sessions.test.ts).
const BOUNDS = ['', '/a0', '/a/b/', '/c', '/\uE000', '/\uFFFF', '\u{10FFFF}', '/_coordvol', '/_coordvol0', ...SHORT_KEYS, ...LONG_KEYS, ...PREFIXES.filter((p) => p !== '')];

const VALUE_POOL = [new Uint8Array([]), new Uint8Array([1]), new Uint8Array([1, 2]), new Uint8Array([2]), new Uint8Array([255, 0])];
const valueArb = fc.oneof(fc.constantFrom(...VALUE_POOL), fc.uint8Array({ maxLength: 6 }));
/** Values as the client gives them: bytes, or a string (UTF-8 encoded by the library). */
const putValueArb = fc.oneof({ arbitrary: valueArb, weight: 5 }, { arbitrary: fc.constantFrom('v', 'é\u{1F600}', ''), weight: 1 });

const rangeSelArb: fc.Arbitrary<ModelSelector> = fc.oneof(
  keyArb.map((key) => ({ key })),
  fc.constantFrom(...PREFIXES).map((prefix) => ({ prefix })),
  fc.tuple(fc.constantFrom(...BOUNDS), fc.option(fc.constantFrom(...BOUNDS), { nil: undefined }), fc.nat(9)).map(([a, b, n]) => {
    if (b === undefined || b === '') return { start: a };
    // Mostly well-ordered; sometimes end ≤ start, which is refused.
    const [start, end] = n < 9 && compareKeys(a, b) > 0 ? [b, a] : [a, b];
    return { start, end };
  }),
);

const optBool = fc.option(fc.boolean(), { nil: undefined });
/** T with its `x: V | undefined` properties made optional `x?: V` (for exactOptionalPropertyTypes). */
type Defined<T> = T extends unknown
  ? { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & { [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined> }
  : never;
/** Drops undefined properties: absent options, as a caller would leave them. */
function defined<T extends object>(o: T): Defined<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Defined<T>;
}

/** A range limit; 0 is refused. */
const limitArb = fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.constant(0) });
const rangeQueryArb: fc.Arbitrary<ModelSelector & ModelRangeQuery> = fc.oneof(
  { weight: 15, arbitrary: fc.tuple(rangeSelArb, fc.option(limitArb, { nil: undefined }), optBool, optBool).map(([sel, limit, keysOnly, countOnly]) => defined({ ...sel, limit, keysOnly, countOnly })) },
  { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...CHILD_PREFIXES), fc.option(limitArb, { nil: undefined })).map(([prefix, limit]) => defined({ prefix, children: true, limit })) },
  // children without a prefix is refused
  { weight: 1, arbitrary: keyArb.map((key) => ({ key, children: true })) },
);

/** Which rev a read or compact asks for, resolved against the current rev when it runs. */
type RevPick =
  | { k: 'latest' }
  | { k: 'back'; n: number }
  /** A point between compactRev (f = 0) and the current rev (f = 1000). */
  | { k: 'frac'; f: number }
  /** A point in (compactRev, current]: what compact accepts. */
  | { k: 'above'; f: number }
  | { k: 'ahead'; n: number }
  | { k: 'abs'; n: number };
const readRevArb: fc.Arbitrary<RevPick> = fc.oneof(
  { weight: 10, arbitrary: fc.constant<RevPick>({ k: 'latest' }) },
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 1000 }).map((f): RevPick => ({ k: 'frac', f })) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 4 }).map((n): RevPick => ({ k: 'back', n })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map((n): RevPick => ({ k: 'ahead', n })) },
  { weight: 1, arbitrary: fc.constant<RevPick>({ k: 'abs', n: 0 }) },
);
const compactRevArb: fc.Arbitrary<RevPick> = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 1000 }).map((f): RevPick => ({ k: 'above', f })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 3 }).map((n): RevPick => ({ k: 'back', n })) },
  // at or below the compactRev: refused
  { weight: 1, arbitrary: fc.constant<RevPick>({ k: 'frac', f: 0 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map((n): RevPick => ({ k: 'ahead', n })) },
  { weight: 1, arbitrary: fc.constant<RevPick>({ k: 'abs', n: 0 }) },
);
function resolveRev(p: RevPick, current: number, compactRev: number): number | undefined {
  switch (p.k) {
    case 'latest':
      return undefined;
    case 'back':
      return Math.max(0, current - p.n);
    case 'frac':
      // Mostly at or above compactRev, where history must still be readable.
      return compactRev + Math.floor(((current - compactRev) * p.f) / 1000);
    case 'above':
      return current > compactRev ? compactRev + 1 + Math.floor(((current - compactRev - 1) * p.f) / 1000) : current;
    case 'ahead':
      return current + p.n;
    case 'abs':
      return p.n;
  }
}

// --- ops -----------------------------------------------------------------------------------------

type Op =
  | { t: 'put'; key: string; value: Uint8Array | string; prevKv?: boolean }
  | { t: 'delete'; sel: ModelSelector; prevKv?: boolean }
  | { t: 'txn'; compare: ModelCompare[]; success: ModelTxnOp[]; failure: ModelTxnOp[] }
  | { t: 'compact'; rev: RevPick }
  | { t: 'get'; key: string; rev: RevPick }
  | { t: 'range'; q: ModelSelector & ModelRangeQuery; rev: RevPick }
  | { t: 'status' };

const deleteSelArb: fc.Arbitrary<ModelSelector> = fc.oneof(
  { weight: 12, arbitrary: writeKeyArb.map((key) => ({ key })) },
  { weight: 5, arbitrary: fc.constantFrom(...PREFIXES.filter((p) => p !== '' && p !== '/')).map((prefix) => ({ prefix })) },
  // these reach into /_coordvol/: refused
  { weight: 1, arbitrary: fc.constantFrom('', '/').map((prefix) => ({ prefix })) },
  { weight: 5, arbitrary: rangeSelArb.filter((s) => 'start' in s) },
);
/** Txn deletes: mostly single keys, so branches less often both put and delete a key. */
const txnDeleteSelArb: fc.Arbitrary<ModelSelector> = fc.oneof({ weight: 4, arbitrary: keyArb.map((key) => ({ key })) }, { weight: 1, arbitrary: deleteSelArb });

const cmpOp = fc.constantFrom<'=' | '!=' | '<' | '>'>('=', '!=', '<', '>');
const compareArb: fc.Arbitrary<ModelCompare> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ key: keyArb, target: fc.constant('value' as const), op: cmpOp, value: valueArb }) },
  { weight: 2, arbitrary: fc.record({ key: keyArb, target: fc.constant('version' as const), op: cmpOp, value: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({
    key: keyArb,
    target: fc.constantFrom('version' as const, 'createRev' as const, 'modRev' as const),
    op: cmpOp,
    value: fc.oneof(fc.nat(3), fc.nat(60)),
  }) },
  { weight: 4, arbitrary: fc.record({
    key: keyArb,
    target: fc.constant('exists' as const),
    // '<' on exists is refused
    op: fc.oneof({ weight: 20, arbitrary: fc.constantFrom<'=' | '!='>('=', '!=') }, { weight: 1, arbitrary: fc.constant<'<'>('<') }),
    value: fc.boolean(),
  }) },
);

const txnOpArb: fc.Arbitrary<ModelTxnOp> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.oneof({ weight: 40, arbitrary: keyArb }, { weight: 1, arbitrary: writeKeyArb }), valueArb, optBool).map(([key, value, prevKv]) => defined({ op: 'put' as const, key, value, prevKv })) },
  { weight: 2, arbitrary: fc.tuple(txnDeleteSelArb, optBool).map(([sel, prevKv]) => defined({ op: 'delete' as const, ...sel, prevKv })) },
  { weight: 2, arbitrary: readKeyArb.map((key) => ({ op: 'get' as const, key })) },
  { weight: 2, arbitrary: rangeQueryArb.map((q) => ({ op: 'range' as const, ...q })) },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 30, arbitrary: fc.tuple(writeKeyArb, putValueArb, optBool).map(([key, value, prevKv]) => defined({ t: 'put' as const, key, value, prevKv })) },
  { weight: 10, arbitrary: fc.tuple(deleteSelArb, optBool).map(([sel, prevKv]) => defined({ t: 'delete' as const, sel, prevKv })) },
  {
    weight: 15,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      compare: fc.array(compareArb, { maxLength: 2 }),
      success: fc.array(txnOpArb, { maxLength: 4 }),
      failure: fc.array(txnOpArb, { maxLength: 3 }),
    }),
  },
  { weight: 5, arbitrary: compactRevArb.map((rev) => ({ t: 'compact' as const, rev })) },
  { weight: 15, arbitrary: fc.tuple(readKeyArb, readRevArb).map(([key, rev]) => ({ t: 'get' as const, key, rev })) },
  { weight: 20, arbitrary: fc.tuple(rangeQueryArb, readRevArb).map(([q, rev]) => ({ t: 'range' as const, q, rev })) },
  { weight: 3, arbitrary: fc.constant({ t: 'status' as const }) },
);

// --- running one op on the model and on a volume ------------------------------------------------

/** Steer the random runs around the product bugs pinned by the KNOWN BUG tests below. */
const AVOID_KNOWN_BUGS = false;

/** An op with its revs resolved: the same concrete call for all three. */
type Call =
  | { t: 'put'; key: string; value: Uint8Array | string; prevKv?: boolean }
  | { t: 'delete'; sel: ModelSelector; prevKv?: boolean }
  | { t: 'txn'; compare: ModelCompare[]; success: ModelTxnOp[]; failure: ModelTxnOp[] }
  | { t: 'compact'; rev: number }
  | { t: 'get'; key: string; rev?: number }
  | { t: 'range'; q: ModelSelector & ModelRangeQuery & { rev?: number } }
  | { t: 'status' };

function resolveCall(op: Op, m: Model): Call {
  switch (op.t) {
    case 'compact':
      return { t: 'compact', rev: resolveRev(op.rev, m.rev, m.compactRev) ?? m.rev };
    case 'get': {
      const rev = resolveRev(op.rev, m.rev, m.compactRev);
      return rev === undefined ? { t: 'get', key: op.key } : { t: 'get', key: op.key, rev };
    }
    case 'range': {
      let rev = resolveRev(op.rev, m.rev, m.compactRev);
      // KNOWN BUG (see 'KNOWN BUG: range by key at an older rev' below): a range with a key
      // selector below the brick's checkpoint finds nothing. Kept out of the random runs so they
      // can still find other bugs (today these short runs stay above the checkpoint anyway; the
      // table path is covered with small checkpoints in store.test.ts). Set AVOID_KNOWN_BUGS to
      // false once that test passes.
      if (AVOID_KNOWN_BUGS && 'key' in op.q && rev !== undefined && rev < m.rev) rev = undefined;
      return { t: 'range', q: rev === undefined ? op.q : { ...op.q, rev } };
    }
    default:
      return op;
  }
}

const bytesOf = (v: Uint8Array | string): Uint8Array => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

function runModel(m: Model, c: Call): unknown {
  switch (c.t) {
    case 'put':
      return m.put(c.key, bytesOf(c.value), defined({ prevKv: c.prevKv }));
    case 'delete':
      return m.delete(c.sel, defined({ prevKv: c.prevKv }));
    case 'txn':
      return m.txn(c);
    case 'compact':
      return m.compact(c.rev);
    case 'get':
      return m.get(c.key, defined({ rev: c.rev }));
    case 'range':
      return m.range(c.q);
    case 'status':
      return { commitRev: m.rev, compactRev: m.compactRev, lastRev: m.rev, keys: m.liveKeys() };
  }
}

async function runVolume(v: Volume, c: Call): Promise<unknown> {
  switch (c.t) {
    case 'put':
      return v.put(c.key, c.value, defined({ prevKv: c.prevKv }));
    case 'delete':
      return v.delete({ ...c.sel } as Parameters<Volume['delete']>[0], defined({ prevKv: c.prevKv }));
    case 'txn':
      // Deliberately invalid compares (exists with '<') are part of the input space.
      return v.txn(c as unknown as Parameters<Volume['txn']>[0]);
    case 'compact':
      return v.compact(c.rev);
    case 'get':
      return v.get(c.key, defined({ rev: c.rev }));
    case 'range':
      return v.range(c.q as Parameters<Volume['range']>[0]);
    case 'status': {
      const s = await v.status();
      const b = s.volume?.bricks[0];
      return { commitRev: s.volume?.commitRev, compactRev: s.volume?.compactRev, lastRev: b?.lastRev, keys: b?.keys };
    }
  }
}

/** Plain data for exact comparison: bytes as hex, undefined properties dropped, keys sorted. */
function normalize(x: unknown): unknown {
  if (x instanceof Uint8Array) return `hex:${Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex')}`;
  if (Array.isArray(x)) return x.map(normalize);
  if (x !== null && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) {
      const v = (x as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = normalize(v);
    }
    return out;
  }
  return x;
}

type Outcome = string; // canonical JSON of { ok } or { error }

function outcomeOfModel(m: Model, c: Call): Outcome {
  try {
    return JSON.stringify({ ok: normalize(runModel(m, c)) });
  } catch (e) {
    if (e instanceof ModelError) return JSON.stringify({ error: e.code });
    throw e;
  }
}

async function outcomeOfVolume(v: Volume, c: Call): Promise<Outcome> {
  try {
    return JSON.stringify({ ok: normalize(await runVolume(v, c)) });
  } catch (e) {
    if (isCoordError(e)) return JSON.stringify({ error: e.code });
    return JSON.stringify({ error: `NOT A CoordError: ${String(e)}` });
  }
}

/** Readable op descriptions: long keys shortened to their head, length and tail. */
function show(x: unknown): string {
  return JSON.stringify(normalize(x), (_k, v: unknown) => {
    if (typeof v === 'string' && v.length > 40) return `${v.slice(0, 8)}…[${Buffer.byteLength(v)}B]…${v.slice(-6)}`;
    return v;
  });
}
function shorten(s: string): string {
  return s.replace(/x{40,}/g, (m) => `x{${m.length}}`);
}

// --- the volumes ---------------------------------------------------------------------------------

const LEASE_MS = 10;
/** Small, so random runs read through the state tables and history, not only the overlay. */
const CHECKPOINT_ENTRIES = 7;

function memoryVolfile(): string {
  const lmdb = singleBrickVolfile({ volumeName: 'coordvol', brickDir: 'brick', fsync: false, leaseMs: LEASE_MS, checkpointEntries: CHECKPOINT_ENTRIES });
  return lmdb
    .replace('type storage/lmdb', 'type storage/memory')
    .split('\n')
    .filter((l) => !/^\s*option (directory|fsync) /.test(l))
    .join('\n');
}

interface Pair {
  readonly lmdb: EmbeddedVolume;
  readonly memory: EmbeddedVolume;
  close(): Promise<void>;
}

const leftDirs = new Set<string>();

async function openPair(): Promise<Pair> {
  const dirL = await mkdtemp(join(tmpdir(), 'coordvol-model-lmdb-'));
  const dirM = await mkdtemp(join(tmpdir(), 'coordvol-model-mem-'));
  leftDirs.add(dirL).add(dirM);
  const volfile = join(dirM, 'memory.vol');
  await writeFile(volfile, memoryVolfile());
  const [lmdb, memory] = await Promise.allSettled([
    openVolume({ dir: dirL, fsync: false, leaseMs: LEASE_MS, checkpointEntries: CHECKPOINT_ENTRIES }),
    openVolume({ dir: dirM, volfile, leaseMs: LEASE_MS }),
  ]);
  const close = async (): Promise<void> => {
    for (const r of [lmdb, memory]) if (r.status === 'fulfilled') await r.value.close();
    for (const d of [dirL, dirM]) {
      await rm(d, { recursive: true, force: true });
      leftDirs.delete(d);
    }
  };
  if (lmdb.status === 'rejected' || memory.status === 'rejected') {
    await close();
    throw lmdb.status === 'rejected' ? lmdb.reason : (memory as PromiseRejectedResult).reason;
  }
  return { lmdb: lmdb.value, memory: memory.value, close };
}

/** MODEL_STATS=1 prints how often each op ran and how it ended, to judge the generators. */
const stats = new Map<string, number>();
function tally(c: Call, outcome: Outcome): void {
  if (!process.env['MODEL_STATS']) return;
  const o = JSON.parse(outcome) as { ok?: { succeeded?: boolean; deleted?: number }; error?: string };
  let how = o.error ?? 'ok';
  if (c.t === 'txn' && o.ok) how = o.ok.succeeded ? 'ok success' : 'ok failure';
  if (c.t === 'delete' && o.ok) how = o.ok.deleted ? 'ok deleted' : 'ok nothing';
  const name = `${c.t}${c.t === 'range' && 'rev' in c.q ? '@rev' : ''}${c.t === 'get' && c.rev !== undefined ? '@rev' : ''} ${how}`;
  stats.set(name, (stats.get(name) ?? 0) + 1);
}

/**
 * Writes filler until the brick has checkpointed past `rev`, so reads at or below it are served
 * from the brick's tables instead of its in-memory overlay of recent entries.
 */
async function pushPastCheckpoint(v: Volume, rev: number): Promise<void> {
  for (let round = 0; round < 200; round++) {
    const dump = await v.statedump();
    const brick = dump.find((d) => d.type.startsWith('storage/'));
    const checkpointRev = brick?.state['checkpointRev'];
    if (typeof checkpointRev !== 'number') return; // a store without checkpoints reads its tables always
    if (checkpointRev > rev) return;
    await Promise.all(Array.from({ length: 256 }, (_, i) => v.put(`/filler/${i % 16}`, String(round))));
    await new Promise((r) => setTimeout(r, 5)); // let the background checkpoint run
  }
  throw new Error(`the brick never checkpointed past rev ${rev}`);
}

/** Runs `ops` on all three; throws on the first disagreement, naming the op. */
async function check(ops: readonly Op[]): Promise<void> {
  const pair = await openPair();
  try {
    const m = new Model();
    const log: string[] = [];
    const agree = async (what: string, c: Call): Promise<void> => {
      const expected = outcomeOfModel(m, c);
      const [l, mem] = await Promise.all([outcomeOfVolume(pair.lmdb, c), outcomeOfVolume(pair.memory, c)]);
      log.push(`${what} ${show(c)} → ${expected}`);
      tally(c, expected);
      if (l !== expected || mem !== expected) {
        const recent = log.slice(-6).map(shorten).join('\n  ');
        throw new Error(
          shorten(`${what} ${show(c)} disagrees\n  model:  ${expected}\n  lmdb:   ${l}\n  memory: ${mem}\n  last calls:\n  ${recent}`),
        );
      }
    };
    await agree('start', { t: 'status' });
    for (const [i, op] of ops.entries()) await agree(`#${i}`, resolveCall(op, m));
    // Every rev still in history reads the same, value for value.
    for (let rev = m.compactRev; rev <= m.rev; rev++) await agree(`final@${rev}`, { t: 'range', q: { start: '', rev } });
    await agree('final', { t: 'status' });
  } finally {
    await pair.close();
  }
}

afterAll(async () => {
  if (stats.size > 0) console.log([...stats].sort().map(([k, n]) => `${k}: ${n}`).join('\n'));
  for (const d of leftDirs) await rm(d, { recursive: true, force: true });
});

describe('volume semantics: storage/lmdb = storage/memory = model', () => {
  it('the memory volfile swaps only the storage translator', () => {
    const text = memoryVolfile();
    expect(text).toContain('type storage/memory');
    expect(text).not.toMatch(/storage\/lmdb|option directory|option fsync/);
    expect(text).toContain('option lease-ms 10ms');
  });

  it('a fixed sequence covering every op agrees (smoke)', async () => {
    const ops: Op[] = [
      { t: 'put', key: '/a', value: 'x' },
      { t: 'put', key: '/a/b', value: new Uint8Array([1]) },
      { t: 'put', key: '/a', value: new Uint8Array([2]), prevKv: true },
      { t: 'put', key: LONG_BASE + '2', value: new Uint8Array([3]) },
      { t: 'put', key: LONG_BASE + '1', value: new Uint8Array([]) },
      { t: 'put', key: '/\u{1F600}', value: 'smile' },
      { t: 'put', key: '/\uFFFD', value: 'replacement' },
      { t: 'range', q: { prefix: '/' }, rev: { k: 'latest' } },
      { t: 'range', q: { prefix: '/', limit: 2, keysOnly: true }, rev: { k: 'back', n: 2 } },
      { t: 'range', q: { prefix: '/a/', children: true }, rev: { k: 'latest' } },
      { t: 'txn', compare: [{ key: '/a', target: 'version', op: '=', value: 2 }], success: [{ op: 'delete', prefix: '/a/', prevKv: true }, { op: 'range', prefix: '/a' }, { op: 'put', key: '/b', value: new Uint8Array([9]) }], failure: [] },
      { t: 'delete', sel: { start: '/long/', end: LONG_BASE + '2' }, prevKv: true },
      { t: 'delete', sel: { key: '/nothing' } },
      { t: 'compact', rev: { k: 'back', n: 3 } },
      { t: 'compact', rev: { k: 'back', n: 5 } },
      { t: 'get', key: '/a', rev: { k: 'abs', n: 3 } },
      { t: 'get', key: '/a', rev: { k: 'ahead', n: 1 } },
      { t: 'range', q: { start: '', countOnly: true }, rev: { k: 'frac', f: 0 } },
      { t: 'status' },
    ];
    await check(ops);
  });

  // KNOWN BUG (product, store/brick-store.ts scanHistory + replication/validate.ts selectorRange):
  // a key selector becomes the range [key, key + '\0'); a read below the brick's checkpoint
  // scans the history table with that end as an exclusive bound, but the key's own history keys
  // are key + 0x00 + rev, which sort above key + '\0'. So range({ key, rev }) returns nothing
  // once rev is older than the checkpoint (checkpointEntriesDefault revs back), while
  // get(key, { rev }) is right. Store-level twin: 'KNOWN BUG: a single-key scan …' in store.test.ts.
  it('range by key at an older rev finds the key (regression)', async () => {
    const pair = await openPair();
    try {
      for (const v of [pair.lmdb, pair.memory]) {
        expect((await v.put('/a', 'one')).rev).toBe(3);
        expect((await v.put('/a', 'two')).rev).toBe(4);
        await pushPastCheckpoint(v, 4);
        expect((await v.get('/a', { rev: 3 })).kv?.version).toBe(1); // get at rev 3 is right
        const r = await v.range({ key: '/a', rev: 3 });
        expect({ count: r.count, keys: r.kvs.map((kv) => kv.key) }).toEqual({ count: 1, keys: ['/a'] });
      }
    } finally {
      await pair.close();
    }
  }, 60_000);

  it('random op sequences agree on every result', async () => {
    const seed = process.env['MODEL_SEED'] !== undefined ? Number(process.env['MODEL_SEED']) : undefined;
    const numRuns = process.env['MODEL_RUNS'] !== undefined ? Number(process.env['MODEL_RUNS']) : 80;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 20, maxLength: 80 }), async (ops) => {
        await check(ops);
      }),
      { numRuns, ...(seed !== undefined ? { seed } : {}), interruptAfterTimeLimit: 40_000, markInterruptAsFailure: false },
    );
  }, 120_000);
});
