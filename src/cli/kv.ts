// `coordvol kv get|put|del|ls|txn`: the key-value commands. Each parses its arguments, calls
// the library, and prints a table (or --json).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { coordError } from '../common/errors.js';
import { asRev } from '../common/ids.js';
import { kvJson, txnArgs, txnResultJson, type TxnJson } from '../api/shape.js';
import type { Compare, KeyValue, PutResult, TxnOp } from '../../translators/fops.js';
import { run } from './context.js';
import { putEphemeral } from './session.js';
import type { Volume } from '../client/volume.js';
import { columns, shown, table } from './output.js';

function intOpt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw coordError('invalid-argument', `${name} must be a non-negative integer, not ${JSON.stringify(v)}`);
  return n;
}

function kvRows(kv: KeyValue, rev: number): string {
  return table([
    ['key', kv.key],
    ['value', shown(kv.value)],
    ['createRev', kv.createRev],
    ['modRev', kv.modRev],
    ['version', kv.version],
    ...(kv.session !== 0 ? [['session', kv.session] as const] : []),
    ['read at rev', rev],
  ]);
}

/** A txn from JSON, shaped as the HTTP API takes it (values as `value` text or `valueBase64`). */
function parseTxn(text: string): { compare: Compare[]; success: TxnOp[]; failure: TxnOp[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw coordError('invalid-argument', `the txn is not JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw coordError('invalid-argument', 'the txn must be a JSON object {compare, success, failure}');
  for (const part of ['compare', 'success', 'failure']) {
    const x = (raw as Record<string, unknown>)[part];
    if (x !== undefined && (!Array.isArray(x) || x.some((i) => typeof i !== 'object' || i === null))) throw coordError('invalid-argument', `txn ${part} must be a list of objects`);
  }
  return txnArgs(raw as TxnJson);
}

export function registerKv(program: Command): void {
  const kv = program.command('kv').description('read and write keys');

  kv.command('get <key>')
    .description('print a key with its value and revisions')
    .option('--rev <rev>', 'read as of an older rev')
    .option('--serializable', 'read the server brick committed state (no round to the holder)')
    .option('--raw', 'print only the value bytes')
    .addHelpText('after', '\nExamples:\n  coordvol kv get /cluster/peers/a1\n  coordvol kv get /volumes/gv0/info --json\n  coordvol kv get /config/blob --raw > blob.bin')
    .action(async (key: string, o: { rev?: string; serializable?: boolean; raw?: boolean }, cmd: Command) => {
      const rev = intOpt(o.rev, '--rev');
      await run(
        cmd,
        async (v) => {
          const r = await v.get(key, { ...(rev !== undefined ? { rev } : {}), ...(o.serializable ? { consistency: 'serializable' as const } : {}) });
          if (!r.kv) throw coordError('not-found', `key ${key} does not exist (rev ${r.rev})`, { rev: r.rev });
          if (o.raw) process.stdout.write(r.kv.value ?? new Uint8Array());
          return { rev: r.rev, kv: r.kv };
        },
        { human: (r) => (o.raw ? '' : kvRows(r.kv, r.rev)), json: (r) => ({ rev: r.rev, kv: kvJson(r.kv) }) },
      );
    });

  kv.command('put <key> <value>')
    .description("write a key (value '-' reads it from standard input)")
    .option('--prev-kv', 'also print the previous value')
    .option('--sequential', 'append the volume-wide counter to the key, and print the final key')
    .option('--ephemeral', 'hold the key under a session of this process, in the foreground, until SIGINT/SIGTERM (then the key goes at once)')
    .option('--ttl <ms>', 'with --ephemeral: how long the key outlives a killed process (default 10000)')
    .addHelpText('after', "\nExamples:\n  coordvol kv put /config/mode active\n  coordvol kv put /volumes/gv0/info - < info.json\n  coordvol kv put --sequential /queue/job- '{\"n\":1}'\n  coordvol kv put --ephemeral --ttl 3000 /cluster/alive/$(hostname) up &")
    .action(async (key: string, value: string, o: { prevKv?: boolean; sequential?: boolean; ephemeral?: boolean; ttl?: string }, cmd: Command) => {
      const bytes = value === '-' ? readFileSync(0) : Buffer.from(value, 'utf8');
      if (o.ephemeral) return putEphemeral(cmd, key, bytes, o);
      const put = async (v: Volume): Promise<PutResult> => {
        if (o.ttl !== undefined) throw coordError('invalid-argument', '--ttl goes with --ephemeral');
        return v.put(key, bytes, { prevKv: o.prevKv === true, ...(o.sequential ? { sequential: true } : {}) });
      };
      await run(cmd, put, {
        human: (r) => `OK ${r.key} at rev ${r.rev}${r.prevKv ? `\nprevious: ${shown(r.prevKv.value)} (modRev ${r.prevKv.modRev}, version ${r.prevKv.version})` : ''}`,
        json: (r) => ({ ...r, ...(r.prevKv ? { prevKv: kvJson(r.prevKv) } : {}) }),
      });
    });

  kv.command('del <key>')
    .description('delete a key, or every key under a prefix')
    .option('--prefix', 'delete every key that starts with <key>')
    .option('--prev-kv', 'also print what was deleted')
    .addHelpText('after', '\nExamples:\n  coordvol kv del /config/mode\n  coordvol kv del /tmp/ --prefix')
    .action(async (key: string, o: { prefix?: boolean; prevKv?: boolean }, cmd: Command) => {
      await run(cmd, (v) => v.delete(o.prefix ? { prefix: key } : key, { prevKv: o.prevKv === true }), {
        human: (r) => `deleted ${r.deleted} key${r.deleted === 1 ? '' : 's'} (rev ${r.rev})${r.prevKvs?.length ? '\n' + columns(['KEY', 'VALUE', 'MOD-REV'], r.prevKvs.map((p) => [p.key, shown(p.value), String(p.modRev)])) : ''}`,
        json: (r) => ({ ...r, ...(r.prevKvs ? { prevKvs: r.prevKvs.map(kvJson) } : {}) }),
      });
    });

  kv.command('ls [prefix]')
    .description('list keys under a prefix (all keys by default)')
    .option('--limit <n>', 'at most n keys')
    .option('--keys-only', 'no values')
    .option('--children', 'list the direct children of the path instead (like ZooKeeper getChildren)')
    .option('--rev <rev>', 'list as of an older rev')
    .option('--serializable', "read the server brick's committed state")
    .addHelpText('after', '\nExamples:\n  coordvol kv ls /cluster/\n  coordvol kv ls /volumes --children\n  coordvol kv ls --json')
    .action(async (prefix: string | undefined, o: { limit?: string; keysOnly?: boolean; children?: boolean; rev?: string; serializable?: boolean }, cmd: Command) => {
      const limit = intOpt(o.limit, '--limit');
      const rev = intOpt(o.rev, '--rev');
      await run(
        cmd,
        (v) =>
          v.range({
            prefix: prefix ?? '',
            ...(limit !== undefined ? { limit } : {}),
            ...(o.keysOnly ? { keysOnly: true } : {}),
            ...(o.children ? { children: true } : {}),
            ...(rev !== undefined ? { rev: asRev(rev) } : {}),
            ...(o.serializable ? { consistency: 'serializable' as const } : {}),
          }),
        {
          human: (r) => {
            const summary = `${r.count} ${o.children ? 'children' : 'keys'} at rev ${r.rev}${r.more ? ` (showing ${o.children ? r.children?.length : r.kvs.length}; --limit for more)` : ''}`;
            if (o.children) return [...(r.children ?? []), summary].join('\n');
            if (r.kvs.length === 0) return summary;
            const rows = r.kvs.map((k) => (o.keysOnly ? [k.key, String(k.modRev), String(k.version)] : [k.key, shown(k.value), String(k.modRev), String(k.version)]));
            return columns(o.keysOnly ? ['KEY', 'MOD-REV', 'VERSION'] : ['KEY', 'VALUE', 'MOD-REV', 'VERSION'], rows) + '\n' + summary;
          },
          json: (r) => ({ ...r, kvs: r.kvs.map(kvJson) }),
        },
      );
    });

  kv.command('txn [file]')
    .description("run a txn given as JSON in <file> or on standard input ('-')")
    .addHelpText(
      'after',
      `\nThe JSON is {"compare": [...], "success": [...], "failure": [...]}, values as "value" (text) or
"valueBase64". Example, a compare-and-set:
  echo '{"compare":[{"key":"/leader","target":"exists","op":"=","value":false}],
         "success":[{"op":"put","key":"/leader","value":"node-1"}],
         "failure":[{"op":"get","key":"/leader"}]}' | coordvol kv txn -`,
    )
    .action(async (file: string | undefined, _o: unknown, cmd: Command) => {
      await run(
        cmd,
        async (v) => v.txn(parseTxn(readFileSync(file === undefined || file === '-' ? 0 : file, 'utf8'))),
        {
          human: (r) => {
            const lines = [`${r.succeeded ? 'SUCCEEDED' : 'FAILED'} (compares ${r.succeeded ? 'held' : 'did not hold'}), rev ${r.rev}`];
            for (const x of r.results) {
              if (x.op === 'put') lines.push(`put ${x.key}`);
              else if (x.op === 'delete') lines.push(`delete: ${x.deleted} deleted`);
              else if (x.op === 'get') lines.push(`get: ${x.kv ? `${x.kv.key} = ${shown(x.kv.value)} (modRev ${x.kv.modRev})` : 'absent'}`);
              else lines.push(`range: ${x.count} keys${x.kvs.length ? ': ' + x.kvs.map((k) => k.key).join(', ') : ''}`);
            }
            return lines.join('\n');
          },
          json: (r) => txnResultJson(r),
        },
      );
    });
}
