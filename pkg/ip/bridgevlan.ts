// Bridge VLAN filtering entries, through `bridge -batch -` (iproute2 has no `ip` form for them).
import { run } from '../exec';
import { CniError, ErrCode } from '../cni/errors';

export async function bridgeBatch(cmds: string[][]): Promise<void> {
  if (!cmds.length) return;
  const r = await run('bridge', ['-batch', '-'], { input: cmds.map((c) => c.join(' ')).join('\n') + '\n', allowFailure: true });
  if (r.exitCode !== 0) throw new CniError(ErrCode.KernelOperation, `bridge -batch: ${r.stderr.trim()}`);
}
