// What a daemon writes when a probe makes it join a volume (DESIGN §8): its fresh brick
// discarded, the cluster secret, and the volfile it starts from next — a master's naming every
// member's master (its brick created with the volume's initial config: storage option `join`),
// or a plain peer's client volfile naming the masters. Written whole or not at all, in an order
// that leaves a daemon a crash interrupts either still fresh or joined.
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PeerJoinArgs } from '../../translators/fops.js';
import { createdMarkerOf } from '../../translators/storage/lmdb.js';
import { clientVolfile, masterVolfile } from './volfiles.js';

/** A plain peer's volfile in its data directory: the masters it reaches the volume through. */
export const CLIENT_VOLFILE_NAME = 'coordvol-client.vol';

/** The fresh daemon's own facts a join keeps: where it listens, its brick's name and place. */
export interface JoinPlan {
  readonly args: PeerJoinArgs;
  readonly address: string;
  readonly brick: string;
  readonly brickDir: string;
  readonly secretFile: string;
  readonly fsync: boolean;
  /** The master volfile's path, and the client volfile's (a plain peer's). */
  readonly volfile: string;
  readonly clientVolfile: string;
}

export function writeJoinFiles(p: JoinPlan): void {
  rmSync(p.brickDir, { recursive: true, force: true });
  rmSync(createdMarkerOf(p.brickDir), { force: true });
  writeAtomically(p.secretFile, `${p.args.secret.trim()}\n`, 0o600);
  const others = p.args.masters.filter((m) => m.brick !== p.brick).map((m) => ({ listen: m.address, brick: m.brick }));
  if (p.args.role === 'master') {
    const text = masterVolfile({
      volumeName: p.args.initial.volumeName,
      initialBricks: p.args.initial.bricks,
      initialQuorumCount: p.args.initial.quorumCount,
      self: { listen: p.address, brick: p.brick },
      others,
      brickDir: p.brickDir,
      secretFile: p.secretFile,
      fsync: p.fsync,
      leaseMs: p.args.leaseMs,
      join: true,
    });
    writeAtomically(p.volfile, text, 0o644);
    return;
  }
  writeAtomically(p.clientVolfile, clientVolfile({ masters: others.map((m) => m.listen), listen: p.address, secretFile: p.secretFile, volumeId: p.args.volumeId }), 0o644);
  // The client volfile rules from now on; the master's is kept aside, not deleted.
  if (existsSync(p.volfile)) renameSync(p.volfile, `${p.volfile}.discarded`);
}

/** Writes a file whole or not at all (a crash leaves the old one): write aside, fsync, rename. */
export function writeAtomically(path: string, text: string, mode: number): void {
  const tmp = join(dirname(path), `.${Date.now()}.${process.pid}.tmp`);
  writeFileSync(tmp, text, { mode, flush: true });
  renameSync(tmp, path);
}
