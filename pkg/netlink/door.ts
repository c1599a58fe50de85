// The kernel door in-process: KernelOps as rtnetlink requests and /proc/sys writes, KernelReads as dumps, in our
// netns or another one, with nothing spawned. pkg/ip/ops.ts picks this door when the native module loads
// (netlinkUsable in ./native).
import type { KernelOp, KernelRead } from '../ip/ops';
import { inNetns } from './nl';
import { dumpFdb, dumpLinks, dumpNeighs, dumpRoutes, listNamespaces } from './read';
import { Rtnl } from './rtnl';
import { writeSysctls } from '../ip/sysctl';

/** The op at `index` failed; `reason` in the words ip would print. */
export class FailedOp extends Error {
  constructor(
    readonly index: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/** told of each op: its index, how long it took, the refusal if any */
export type OpTimer = (index: number, ms: number, error: string | undefined) => void;

/**
 * Carry out ops in order, then the reads, in `netns` (a path) or ours. The first refusal stops the rest and is
 * thrown as a FailedOp; a read that fails throws its own error.
 */
export function applyOverNetlink(ops: readonly KernelOp[], reads: readonly KernelRead[], netns?: string, onOp?: OpTimer): unknown[][] {
  const rt = new Rtnl(netns);
  try {
    ops.forEach((o, i) => {
      const t0 = onOp ? performance.now() : 0;
      try {
        if (o.op === 'sysctl') {
          const write = () => writeSysctls({ [o.key]: o.value });
          if (netns) inNetns(netns, write);
          else write();
        } else {
          rt.apply(o);
        }
        onOp?.(i, performance.now() - t0, undefined);
      } catch (e) {
        onOp?.(i, performance.now() - t0, (e as Error).message);
        throw new FailedOp(i, (e as Error).message);
      }
    });
    return reads.map((r) => readOne(rt, r));
  } finally {
    rt.close();
  }
}

function readOne(rt: Rtnl, r: KernelRead): unknown[] {
  switch (r.read) {
    case 'links':
      return dumpLinks(rt, r.dev);
    case 'routes':
      return dumpRoutes(rt, r.table, r.family, r.dev);
    case 'neighs':
      return dumpNeighs(rt, r.dev);
    case 'namespaces':
      return listNamespaces(rt);
  }
}

/** A VTEP's own forwarding entries. */
export function readFdbOverNetlink(dev: string, netns?: string): ReturnType<typeof dumpFdb> {
  const rt = new Rtnl(netns);
  try {
    return dumpFdb(rt, dev);
  } finally {
    rt.close();
  }
}
