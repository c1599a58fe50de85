import { CniError, ErrCode } from './cni/errors';
import { CommandError, run } from './exec';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe('run', () => {
  it('true: exit 0, empty output', async () => {
    await expect(run('true', [])).resolves.toEqual({ stdout: '', stderr: '', exitCode: 0 });
  });

  it('false: CommandError with the exit code', async () => {
    const e = await rejection(run('false', []));
    expect(e).toBeInstanceOf(CommandError);
    expect(e).toBeInstanceOf(CniError);
    const ce = e as CommandError;
    expect(ce.result.exitCode).toBe(1);
    expect(ce.file).toBe('false');
    expect(ce.message).toContain('exit 1');
  });

  it('a failure keeps stderr and names the command', async () => {
    const e = (await rejection(run('ls', ['/nonexistent-tscni-path']))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.result.exitCode).toBe(2);
    expect(e.result.stderr).toContain('/nonexistent-tscni-path');
    expect(e.message).toContain('ls /nonexistent-tscni-path');
    expect(e.message).toContain('No such file');
  });

  it('allowFailure returns the result instead of throwing', async () => {
    const r = await run('false', [], { allowFailure: true });
    expect(r.exitCode).toBe(1);
    const r2 = await run('ls', ['/nonexistent-tscni-path'], { allowFailure: true });
    expect(r2.exitCode).toBe(2);
    expect(r2.stderr).toContain('No such file');
  });

  it('input goes to stdin, output comes back unchanged (final newline kept)', async () => {
    const r = await run('cat', [], { input: 'link add a\nlink add b\n' });
    expect(r.stdout).toBe('link add a\nlink add b\n');
    expect(r.exitCode).toBe(0);
  });

  it('input larger than a pipe holds arrives whole, and no temp file is left behind', async () => {
    const os = await import('os');
    const fs = await import('fs');
    const leftovers = () => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(`.tscni-in-${process.pid}-`));
    const big = 'x'.repeat(200_000) + '\nend\n';
    const r = await run('cat', [], { input: big });
    expect(r.stdout).toBe(big);
    expect(leftovers()).toEqual([]);
  });

  it('input still arrives when TMPDIR cannot hold a file (through a pipe instead)', async () => {
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = '/nonexistent-tscni-tmp';
    try {
      const r = await run('cat', [], { input: 'route add 10.0.0.0/8 dev x\n' });
      expect(r.stdout).toBe('route add 10.0.0.0/8 dev x\n');
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  it('a child killed by a signal is an error naming the signal', async () => {
    const e = (await rejection(run('python3', ['-c', 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)']))) as CniError;
    expect(e).toBeInstanceOf(CniError);
    expect(e.message).toContain('SIGKILL');
  });

  it('arguments are passed as they are, never through a shell', async () => {
    const r = await run('printf', ['%s|', 'a b', '$(echo x)', ';ls', '*']);
    expect(r.stdout).toBe('a b|$(echo x)|;ls|*|');
  });

  it('timeout gives code 11 (try again later)', async () => {
    const t0 = Date.now();
    const e = (await rejection(run('sleep', ['5'], { timeout: 200 }))) as CniError;
    expect(e).toBeInstanceOf(CniError);
    expect(e.code).toBe(ErrCode.TryAgainLater);
    expect(e.message).toContain('sleep 5');
    expect(e.message).toContain('timed out');
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('timeout also wins with allowFailure', async () => {
    const e = (await rejection(run('sleep', ['5'], { timeout: 200, allowFailure: true }))) as CniError;
    expect(e.code).toBe(ErrCode.TryAgainLater);
  });

  it('a missing program is a CniError, not a crash, and leaves no timer keeping the process alive', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
    const before = timers();
    const e = (await rejection(run('tscni-no-such-program', [], { timeout: 60_000 }))) as CniError;
    expect(e).toBeInstanceOf(CniError);
    expect(e.code).toBe(ErrCode.Internal);
    expect(e.message).toContain('tscni-no-such-program');
    expect(timers()).toBe(before);
  });

  it('env replaces the environment when given', async () => {
    const r = await run('env', [], { env: { TSCNI_ONLY: 'yes' } });
    expect(r.stdout.trim().split('\n')).toEqual(['TSCNI_ONLY=yes']);
  });

  it('netns runs the program through nsenter --net=<path>', async () => {
    // entering our own namespace changes nothing; without privileges the failure still names nsenter
    const fs = await import('fs');
    const own = fs.readlinkSync('/proc/self/ns/net');
    const r = await run('readlink', ['/proc/self/ns/net'], { netns: `/proc/${process.pid}/ns/net`, allowFailure: true });
    if (r.exitCode === 0) expect(r.stdout.trim()).toBe(own);
    else expect(r.stderr).toContain('nsenter');
    const e = (await rejection(run('true', [], { netns: '/nonexistent-tscni-netns' }))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.message).toContain('nsenter --net=/nonexistent-tscni-netns -- true');
  });
});
