// A master writes the committed membership back into its volfile (DESIGN §8): a link
// (protocol/client) to every other member's master, and the replicate's remote-bricks and
// remote-masters to match, so a restart finds every member in the file. The volume's identity
// (the storage translator's initial config) is never touched: it is the volume id's source. The
// file is written in canonical form, a comment on top saying what it holds and who wrote it.
import { learnersOf, quorumOf } from '../../replication/config.js';
import { peerLinkOptions } from '../../translators/cluster/peer-link.js';
import { formatVolfile, type VolfileDeclText } from '../../translators/volfile.js';
import type { VolumeConfig } from '../../store/types.js';
import { declsOf } from './volfiles.js';

export interface Membership {
  /** The committed config, and the rev it was read at (for the comment). */
  readonly config: VolumeConfig;
  readonly rev: number;
  /** This master's brick (host:path). */
  readonly self: string;
  /** Every member's brick and the address of its master, where known. */
  readonly masters: readonly { readonly brick: string; readonly address: string | undefined }[];
}

const option = (d: VolfileDeclText, key: string): string | undefined => d.options.find((o) => o.key === key)?.value;

function withOptions(d: VolfileDeclText, set: Readonly<Record<string, string>>): VolfileDeclText {
  const kept = d.options.filter((o) => !Object.hasOwn(set, o.key));
  return { ...d, options: [...kept, ...Object.entries(set).map(([key, value]) => ({ key, value }))] };
}

/**
 * The volfile `text` with the replicate's links and remote options set to `m`; `text` itself
 * (unchanged) when it has no replicate or already says the same. A member whose master's address
 * is unknown keeps the link the file has for it, if any.
 */
export function withMembership(text: string, file: string, m: Membership): string {
  const decls = declsOf(text, file);
  const replicate = decls.find((d) => d.type === 'cluster/replicate');
  if (!replicate) return text;
  const local = replicate.subvolumes[0] as string;
  const oldRemotes = replicate.subvolumes.slice(1);
  const oldBricks = (option(replicate, 'remote-bricks') ?? '').split(/[\s,]+/).filter((b) => b.length > 0);
  const oldMasters = (option(replicate, 'remote-masters') ?? '').split(/[\s,]+/).filter((b) => b.length > 0);
  const server = decls.find((d) => d.type === 'protocol/server');
  const secretFile = option(replicate, 'secret-file') ?? (server ? option(server, 'secret-file') : undefined) ?? 'secret';
  const byName = new Map(decls.map((d) => [d.name, d]));

  const links: { name: string; brick: string; address: string; decl: VolfileDeclText }[] = [];
  const used = new Set(decls.map((d) => d.name));
  let next = 1;
  const freshName = (): string => {
    while (used.has(`${replicate.name}-peer${next}`)) next++;
    const name = `${replicate.name}-peer${next}`;
    used.add(name);
    return name;
  };
  for (const { brick, address } of m.masters) {
    if (brick === m.self) continue;
    const i = oldBricks.indexOf(brick);
    const oldName = i >= 0 ? oldRemotes[i] : undefined;
    const oldDecl = oldName !== undefined ? byName.get(oldName) : undefined;
    const addr = address ?? oldMasters[i] ?? (oldDecl ? option(oldDecl, 'remote') : undefined);
    if (addr === undefined) continue;
    const name = oldName ?? freshName();
    const decl = oldDecl && option(oldDecl, 'remote') === addr ? oldDecl : { name, type: 'protocol/client', options: peerLinkOptions(addr, secretFile), subvolumes: [] };
    links.push({ name, brick, address: addr, decl });
  }
  const kept = new Set(links.map((l) => l.name));
  const dropped = new Set(oldRemotes.filter((n) => !kept.has(n)));
  const newReplicate = withOptions(
    { ...replicate, subvolumes: [local, ...links.map((l) => l.name)] },
    { 'remote-bricks': links.map((l) => l.brick).join(' '), 'remote-masters': links.map((l) => l.address).join(' '), 'secret-file': secretFile },
  );
  // Empty values cannot be written: a master alone has no remote options (nor needs a secret for links).
  const alone = ['remote-bricks', 'remote-masters', ...(option(replicate, 'secret-file') === undefined ? ['secret-file'] : [])];
  const replicateOut = links.length > 0 ? newReplicate : { ...newReplicate, options: newReplicate.options.filter((o) => !alone.includes(o.key)) };
  const out: VolfileDeclText[] = [];
  for (const d of decls) {
    if (dropped.has(d.name) || kept.has(d.name)) continue;
    // The links go just before the replicate, which names them.
    if (d === replicate) out.push(...links.map((l) => l.decl), replicateOut);
    else out.push(d);
  }
  const body = formatVolfile(out);
  if (body === formatVolfile(decls)) return text;
  const learners = learnersOf(m.config);
  const header = [
    `# coordvol master volfile, rewritten by the master when a membership change committed (rev ${m.rev}).`,
    `# voters: ${m.config.bricks.join(' ')}; learners: ${learners.length > 0 ? learners.join(' ') : '(none)'}; quorum: ${quorumOf(m.config)}.`,
    '# The volume id comes from the storage options (its initial config): never edit them. Change the',
    '# members with `coordvol peer probe HOST --as-master` / `coordvol peer detach HOST`, not here.',
    '',
  ].join('\n');
  return header + body;
}
