// Volfile parsing, option tables, graph validation and the graph lifecycle, with fake
// translator types so the tests do not depend on any real translator.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCoordError } from '../../src/common/errors.js';
import { buildGraph, createRegistry, loadGraph } from '../../translators/graph.js';
import { parseOptions, type OptionSchema, type RawOptionValue } from '../../translators/options.js';
import { Translator, type GraphEnv, type TranslatorClass, type TranslatorSpec } from '../../translators/translator.js';
import { formatVolfile, parseVolfile } from '../../translators/volfile.js';

const FILE = 'conf/test.vol';
const env: GraphEnv = { clock: { nowMs: () => 0 }, baseDir: '/tmp' };

/** Lifecycle calls of every fake translator, in order. */
const calls: string[] = [];

class Fake extends Translator {
  readonly options: Readonly<Record<string, RawOptionValue>>;
  constructor(spec: TranslatorSpec) {
    super(spec);
    this.options = spec.options;
  }
  override async init(): Promise<void> {
    calls.push(`init ${this.name}`);
    if (this.options['fail-init']) throw new Error(`init ${this.name} failed`);
    await super.init();
  }
  override async fini(): Promise<void> {
    calls.push(`fini ${this.name}`);
    if (this.options['fail-fini']) throw new Error(`fini ${this.name} failed`);
    await super.fini();
  }
}

const lifecycleOptions: OptionSchema = {
  'fail-init': { type: 'bool', default: false, description: 'init throws' },
  'fail-fini': { type: 'bool', default: false, description: 'fini throws' },
};
const leafOptions: OptionSchema = {
  flag: { type: 'bool', default: false, description: 'a bool' },
  count: { type: 'int', min: 0, max: 100, default: 1, description: 'an int' },
  cap: { type: 'size', max: 1024 ** 3, default: 1024, description: 'a size' },
  wait: { type: 'time', min: 1, default: 500, description: 'a time' },
  mode: { type: 'string', values: ['fast', 'safe'], default: 'safe', description: 'an enum' },
  label: { type: 'string', description: 'free text, no default' },
  dir: { type: 'path', description: 'a path, no default' },
};
const fake = (type: string, subvolumes: { min: number; max: number }, options: OptionSchema = {}): TranslatorClass => ({
  type,
  subvolumes,
  options: { ...options, ...lifecycleOptions },
  create: (spec) => new Fake(spec),
});
const registry = createRegistry([
  fake('test/leaf', { min: 0, max: 0 }, leafOptions),
  fake('test/pass', { min: 1, max: 1 }),
  fake('test/fan', { min: 1, max: 8 }),
]);

const build = (text: string) => buildGraph(text, { file: FILE, registry, env });
/** Joins lines, so line N of the volfile is the N-th argument. */
const lines = (...ls: string[]): string => ls.join('\n');

/** Asserts `fn` throws a volfile-invalid error at `line` of FILE whose message contains `part`. */
function expectVolfileError(fn: () => unknown, line: number, part: string, file = FILE): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (!isCoordError(thrown)) throw new Error(`expected a CoordError, got ${String(thrown)}`);
  expect(thrown.code).toBe('volfile-invalid');
  expect(thrown.message.startsWith(`${file}:${line}: `), thrown.message).toBe(true);
  expect(thrown.message).toContain(part);
  expect(thrown.details).toEqual({ file, line });
}

const GOOD = lines(
  '# a three-level graph', //                1
  'volume leaf1', //                         2
  '    type test/leaf', //                   3
  '    option flag on', //                   4
  '    option count 7', //                   5
  '    option cap 4MB', //                   6
  '    option wait 2s', //                   7
  '    option mode fast', //                 8
  '    option dir /var/lib/coord vol  ', //  9
  'end-volume', //                           10
  '', //                                     11
  'volume leaf2', //                         12
  '\ttype test/leaf', //                     13
  'end-volume', //                           14
  'volume fan', //                           15
  '    type test/fan', //                    16
  '    subvolumes leaf2   leaf1', //         17
  'end-volume', //                           18
  '   volume top  ', //                      19
  '    type test/pass', //                   20
  '    subvolumes fan', //                   21
  'end-volume', //                           22
);

const leafDefaults = { flag: false, count: 1, cap: 1024, wait: 500, mode: 'safe', 'fail-init': false, 'fail-fini': false };

describe('parseVolfile', () => {
  it('reads declarations with their line numbers', () => {
    const decls = parseVolfile(GOOD, FILE);
    expect(decls.map((d) => d.name)).toEqual(['leaf1', 'leaf2', 'fan', 'top']);
    expect(decls[0]).toEqual({
      name: 'leaf1',
      type: 'test/leaf',
      typeLine: 3,
      line: 2,
      subvolumes: [],
      options: [
        { key: 'flag', value: 'on', line: 4 },
        { key: 'count', value: '7', line: 5 },
        { key: 'cap', value: '4MB', line: 6 },
        { key: 'wait', value: '2s', line: 7 },
        { key: 'mode', value: 'fast', line: 8 },
        { key: 'dir', value: '/var/lib/coord vol', line: 9 },
      ],
    });
    expect(decls[2]?.subvolumes).toEqual([{ name: 'leaf2', line: 17 }, { name: 'leaf1', line: 17 }]);
    expect(decls[3]).toMatchObject({ line: 19, typeLine: 20 });
  });

  it('accepts CRLF line endings', () => {
    expect(parseVolfile(GOOD.replaceAll('\n', '\r\n'), FILE)).toEqual(parseVolfile(GOOD, FILE));
  });

  const errors: [string, string, number, string][] = [
    ['unknown keyword', lines('volume a', '  typo x', 'end-volume'), 2, 'unknown keyword "typo"'],
    ['type outside a block', lines('type test/leaf'), 1, 'type outside a volume block'],
    ['option outside a block', lines('volume a', 'type test/leaf', 'end-volume', 'option count 1'), 4, 'option outside a volume block'],
    ['subvolumes outside a block', lines('', 'subvolumes a'), 2, 'subvolumes outside a volume block'],
    ['volume inside a block', lines('volume a', 'type test/leaf', 'volume b'), 3, 'missing end-volume for the volume at line 1'],
    ['end-volume with no open block', lines('volume a', 'type test/leaf', 'end-volume', 'end-volume'), 4, 'end-volume with no open volume'],
    ['EOF inside a block', lines('# c', 'volume a', 'type test/leaf', ''), 2, 'volume a has no end-volume'],
    ['missing type', lines('volume a', 'option count 1', 'end-volume'), 1, 'volume a has no type'],
    ['type twice', lines('volume a', 'type test/leaf', 'type test/leaf', 'end-volume'), 3, 'type given twice (first at line 2)'],
    ['duplicate volume name', lines('volume a', 'type test/leaf', 'end-volume', 'volume a'), 4, 'duplicate volume name a'],
    ['duplicate option key', lines('volume a', 'option count 1', 'option count 2'), 3, 'option count given twice (first at line 2)'],
    ['two subvolumes lines', lines('volume a', 'subvolumes b', 'subvolumes c'), 3, 'more than one subvolumes line (first at line 2)'],
    ['a subvolume listed twice', lines('volume a', 'subvolumes b c b'), 2, 'subvolume b listed twice'],
    ['bad volume name', lines('volume _a'), 1, 'invalid volume name "_a"'],
    ['volume with two names', lines('volume a b'), 1, 'volume takes exactly one name'],
    ['bad subvolume name', lines('volume a', 'subvolumes b c/d'), 2, 'invalid subvolume name "c/d"'],
    ['empty subvolumes', lines('volume a', 'subvolumes'), 2, 'subvolumes needs at least one name'],
    ['bad option key', lines('volume a', 'option Count 1'), 2, 'invalid option key "Count"'],
    ['option with no value', lines('volume a', 'option count   '), 2, 'option count has no value'],
    ['option with no key', lines('volume a', 'option'), 2, 'option needs a KEY and a VALUE'],
    ['type not word/word', lines('volume a', 'type leaf'), 2, 'invalid type "leaf"'],
    ['type with three parts', lines('volume a', 'type a/b/c'), 2, 'invalid type "a/b/c"'],
    ['empty volfile', '', 1, 'declares no volume'],
    ['only comments', lines('', '# nothing', '  # here'), 1, 'declares no volume'],
  ];
  it.each(errors)('refuses %s', (_what, text, line, part) => {
    expectVolfileError(() => parseVolfile(text, FILE), line, part);
  });

  it('throws nothing but volfile-invalid on random text', () => {
    const word = fc.oneof(
      fc.constantFrom('volume', 'type', 'option', 'subvolumes', 'end-volume', '#', 'a', 'b', 'test/leaf', 'count', '1'),
      fc.string({ maxLength: 8 }),
    );
    const line = fc.array(word, { maxLength: 4 }).map((ws) => ws.join(' '));
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (ls) => {
        try {
          parseVolfile(ls.join('\n'), FILE);
        } catch (e) {
          if (!isCoordError(e) || e.code !== 'volfile-invalid') throw e;
          const at = e.details['line'];
          expect(typeof at === 'number' && at >= 1 && at <= Math.max(1, ls.length)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('formatVolfile', () => {
  it('writes canonical text that parses back to the same declarations', () => {
    const decls = parseVolfile(GOOD, FILE).map((d) => ({
      name: d.name,
      type: d.type,
      options: d.options.map(({ key, value }) => ({ key, value })),
      subvolumes: d.subvolumes.map((s) => s.name),
    }));
    const text = formatVolfile(decls);
    expect(text).toContain('volume leaf1\n    type test/leaf\n    option flag on\n');
    expect(text).toContain('end-volume\n\nvolume leaf2\n');
    const again = parseVolfile(text, FILE).map((d) => ({
      name: d.name,
      type: d.type,
      options: d.options.map(({ key, value }) => ({ key, value })),
      subvolumes: d.subvolumes.map((s) => s.name),
    }));
    expect(again).toEqual(decls);
    expect(formatVolfile(again)).toBe(text);
  });

  it('round-trips random declarations', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,6}$/);
    const value = fc.string({ minLength: 1, maxLength: 10 }).filter((s) => s.trim() === s && s !== '' && !/[\r\n]/.test(s));
    const decl = fc.record({
      name,
      type: fc.stringMatching(/^[a-z][a-z0-9-]{0,5}\/[a-z][a-z0-9-]{0,5}$/),
      options: fc.uniqueArray(fc.record({ key: fc.stringMatching(/^[a-z][a-z0-9-]{0,6}$/), value }), { selector: (o) => o.key, maxLength: 4 }),
      subvolumes: fc.uniqueArray(name, { maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(decl, { selector: (d) => d.name, minLength: 1, maxLength: 4 }), (decls) => {
        const back = parseVolfile(formatVolfile(decls), FILE).map((d) => ({
          name: d.name,
          type: d.type,
          options: d.options.map(({ key, value: v }) => ({ key, value: v })),
          subvolumes: d.subvolumes.map((s) => s.name),
        }));
        expect(back).toEqual(decls);
      }),
    );
  });

  it('refuses what would not round-trip', () => {
    const decl = { name: 'a', type: 'test/leaf', subvolumes: [] };
    expect(() => formatVolfile([{ ...decl, options: [{ key: 'label', value: 'two\nlines' }] }])).toThrow(/value must be/);
    expect(() => formatVolfile([{ ...decl, options: [{ key: 'label', value: ' padded' }] }])).toThrow(/value must be/);
    expect(() => formatVolfile([{ ...decl, name: 'a b', options: [] }])).toThrow(/invalid volume name/);
  });
});

describe('parseOptions', () => {
  const where = { file: FILE, volume: 'v', line: 1 };
  const one = (key: string, value: string): RawOptionValue | undefined =>
    parseOptions(leafOptions, [{ key, value, line: 5 }], where)[key];

  it.each([
    ['on', true], ['OFF', false], ['true', true], ['False', false], ['yes', true], ['no', false], ['Enable', true], ['disable', false],
  ] as const)('bool %s', (value, want) => expect(one('flag', value)).toBe(want));

  it.each([
    ['0', 0], ['17B', 17], ['1kb', 1024], ['2KB', 2048], ['4MB', 4 * 1024 ** 2], ['1gb', 1024 ** 3], ['3 MB', 3 * 1024 ** 2],
  ] as const)('size %s', (value, want) => expect(one('cap', value)).toBe(want));

  it.each([
    ['250', 250], ['250ms', 250], ['3s', 3000], ['2m', 120_000], ['1H', 3_600_000],
  ] as const)('time %s', (value, want) => expect(one('wait', value)).toBe(want));

  it('parses ints, strings and paths, and fills in defaults', () => {
    const got = parseOptions(leafOptions, [
      { key: 'count', value: '+42', line: 2 },
      { key: 'label', value: 'any # text', line: 3 },
      { key: 'dir', value: 'data/brick', line: 4 },
    ], where);
    expect(got).toEqual({ flag: false, count: 42, cap: 1024, wait: 500, mode: 'safe', label: 'any # text', dir: 'data/brick' });
  });

  const errors: [string, string, string][] = [
    ['flag', 'maybe', 'option flag: "maybe" is not a boolean'],
    ['count', '1.5', 'option count: "1.5" is not an integer'],
    ['count', '101', 'option count: 101 is out of range: must be between 0 and 100'],
    ['count', '-1', 'option count: -1 is out of range: must be between 0 and 100'],
    ['count', '99999999999999999999', 'option count: "99999999999999999999" is too large'],
    ['cap', '4TB', 'option cap: "4TB" is not a size'],
    ['cap', '2GB', 'option cap: 2GB (2147483648) is out of range: must be at most 1073741824'],
    ['wait', '5d', 'option wait: "5d" is not a time'],
    ['wait', '0s', 'option wait: 0s (0) is out of range: must be at least 1'],
    ['mode', 'slow', 'option mode: "slow" is not one of: fast, safe'],
    ['nosuch', 'x', 'option nosuch: unknown option; known options: cap, count, dir, flag, label, mode, wait'],
    // An inherited property of Object.prototype is not an option.
    ['constructor', 'x', 'option constructor: unknown option'],
  ];
  it.each(errors)('refuses %s %s', (key, value, part) => {
    expectVolfileError(() => parseOptions(leafOptions, [{ key, value, line: 7 }], where), 7, `volume v: ${part}`);
  });

  it('refuses an empty path', () => {
    expectVolfileError(() => parseOptions(leafOptions, [{ key: 'dir', value: '', line: 3 }], where), 3, 'option dir: the path is empty');
  });
});

describe('buildGraph', () => {
  it('builds the graph with its top, children order and option values', () => {
    const g = build(GOOD);
    expect(g.top.name).toBe('top');
    expect(g.translators.map((t) => t.name)).toEqual(['leaf2', 'leaf1', 'fan', 'top']);
    expect(g.top.children.map((t) => t.name)).toEqual(['fan']);
    expect(g.get('fan')?.children.map((t) => t.name)).toEqual(['leaf2', 'leaf1']);
    expect(g.get('fan')?.type).toBe('test/fan');
    expect(g.get('nosuch')).toBeUndefined();
    expect((g.get('leaf1') as Fake).options).toEqual({
      ...leafDefaults, flag: true, count: 7, cap: 4 * 1024 ** 2, wait: 2000, mode: 'fast', dir: '/var/lib/coord vol',
    });
    expect((g.get('leaf2') as Fake).options).toEqual(leafDefaults);
    expect((g.get('top') as Fake).options).toEqual({ 'fail-init': false, 'fail-fini': false });
    expect(g.get('leaf1')?.env).toBe(env);
  });

  it('builds a single volume', () => {
    expect(build(lines('volume only', 'type test/leaf', 'end-volume')).top.name).toBe('only');
  });

  const leaf = (name: string) => [`volume ${name}`, 'type test/leaf', 'end-volume'];
  const errors: [string, string, number, string][] = [
    ['an unknown type', lines('volume a', 'type test/nosuch', 'end-volume'), 2, 'unknown type test/nosuch; known types: test/fan, test/leaf, test/pass'],
    ['an undefined subvolume', lines(...leaf('b'), 'volume a', 'type test/fan', 'subvolumes b c', 'end-volume'), 6, 'volume a: subvolume c is not defined'],
    ['a cycle', lines(
      'volume a', 'type test/pass', 'subvolumes b', 'end-volume', //   1-4
      'volume b', 'type test/pass', 'subvolumes a', 'end-volume', //   5-8
    ), 7, 'makes a cycle: a -> b -> a'],
    ['a cycle below the top', lines(
      'volume top', 'type test/pass', 'subvolumes x', 'end-volume', //        1-4
      'volume x', 'type test/fan', 'subvolumes y', 'end-volume', //           5-8
      'volume y', 'type test/fan', 'subvolumes z', 'end-volume', //           9-12
      'volume z', 'type test/fan', 'subvolumes x', 'end-volume', //           13-16
    ), 15, 'x -> y -> z -> x'],
    ['a volume its own subvolume', lines('volume a', 'type test/pass', 'subvolumes a', 'end-volume'), 3, 'a -> a'],
    ['a shared subvolume', lines(
      ...leaf('s'), //                                                1-3
      'volume p', 'type test/pass', 'subvolumes s', 'end-volume', //  4-7
      'volume q', 'type test/pass', 'subvolumes s', 'end-volume', //  8-11
      'volume t', 'type test/fan', 'subvolumes p q', 'end-volume', // 12-15
    ), 10, 'volume s is a subvolume of both p and q'],
    ['too many subvolumes', lines(...leaf('b'), ...leaf('c'), 'volume a', 'type test/pass', 'subvolumes b c', 'end-volume'), 9, 'type test/pass takes exactly 1 subvolumes, given 2'],
    ['a subvolume under a leaf', lines(...leaf('b'), 'volume a', 'type test/leaf', 'subvolumes b', 'end-volume'), 6, 'type test/leaf takes exactly 0 subvolumes, given 1'],
    ['too few subvolumes', lines('volume a', 'type test/fan', 'end-volume'), 1, 'type test/fan takes 1 to 8 subvolumes, given 0'],
    ['two tops', lines(...leaf('a'), ...leaf('b'), ...leaf('c')), 1, '3 top volumes (a, b, c)'],
    ['a bad option value', lines('volume a', 'type test/leaf', 'option count 1000', 'end-volume'), 3, 'volume a: option count: 1000 is out of range'],
    ['an unknown option', lines(...leaf('b'), 'volume a', 'type test/pass', 'option count 1', 'subvolumes b', 'end-volume'), 6, 'volume a: option count: unknown option; known options: fail-fini, fail-init'],
  ];
  it.each(errors)('refuses %s', (_what, text, line, part) => {
    expectVolfileError(() => build(text), line, part);
  });

  it('passes parse errors through', () => {
    expectVolfileError(() => build(''), 1, 'declares no volume');
  });
});

describe('loadGraph', () => {
  it('reads and builds a file, naming it in errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coordvol-volfile-'));
    const good = join(dir, 'good.vol');
    const bad = join(dir, 'bad.vol');
    await writeFile(good, GOOD);
    await writeFile(bad, lines('volume a', 'type test/nosuch', 'end-volume'));
    expect((await loadGraph(good, { registry, env })).top.name).toBe('top');
    await loadGraph(bad, { registry, env }).then(
      () => expect.fail('built a bad volfile'),
      (e: unknown) => expectVolfileError(() => { throw e; }, 2, 'unknown type', bad),
    );
  });

  it('refuses an unreadable file', async () => {
    const missing = join(tmpdir(), 'coordvol-no-such-dir', 'x.vol');
    const err: unknown = await loadGraph(missing, { registry, env }).catch((e: unknown) => e);
    expect(isCoordError(err) && err.code).toBe('volfile-invalid');
    expect(String((err as Error).message)).toContain(`${missing}: cannot read the volfile`);
  });
});

describe('Graph lifecycle', () => {
  /** GOOD with `option NAME on` added to the named volumes. */
  const withOption = (option: string, volumes: string[]) =>
    GOOD.split('\n').flatMap((l) => {
      const m = /^\s*volume (\S+)/.exec(l);
      return m?.[1] && volumes.includes(m[1]) ? [l, `option ${option} on`] : [l];
    }).join('\n');

  it('inits bottom-up and finis top-down', async () => {
    calls.length = 0;
    const g = build(GOOD);
    await g.init();
    expect(g.translators.every((t) => t.isUp)).toBe(true);
    await g.fini();
    expect(calls).toEqual([
      'init leaf2', 'init leaf1', 'init fan', 'init top',
      'fini top', 'fini fan', 'fini leaf1', 'fini leaf2',
    ]);
    await g.fini(); // a second fini has nothing left to tear down
    expect(calls).toHaveLength(8);
  });

  it('on an init failure, finis what is up and rethrows', async () => {
    calls.length = 0;
    const g = build(withOption('fail-init', ['fan']));
    await expect(g.init()).rejects.toThrow('init fan failed');
    expect(calls).toEqual(['init leaf2', 'init leaf1', 'init fan', 'fini leaf1', 'fini leaf2']);
  });

  it('fini continues past failures and rethrows the first', async () => {
    calls.length = 0;
    const g = build(withOption('fail-fini', ['fan', 'leaf2']));
    await g.init();
    calls.length = 0;
    await expect(g.fini()).rejects.toThrow('fini fan failed');
    expect(calls).toEqual(['fini top', 'fini fan', 'fini leaf1', 'fini leaf2']);
  });
});
