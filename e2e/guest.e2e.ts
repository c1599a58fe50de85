// The guest machinery itself (e2e/lib/guest.ts): how a backend is chosen and what counts as booted. Backends
// here are stand-ins whose boot() writes what a guest would (or dies as a guest does): booting real kernels is
// e2e/ipip.e2e.ts's part, and the run's probe in the globalSetup boots each real backend in turn.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../pkg/exec';
import type { BootOptions, BootResult, GuestBackend, GuestName } from './lib/guest-boot';
import { cpioNewc, guestKernel } from './lib/guest-qemu';
import { describeVerdict, probeBackend, probeGuests, probeOrder, runIncludesGuests, runInGuest, stepOf } from './lib/guest';
import { moduleLoadOrder } from './lib/kmod';

const modulesDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-t-kmod-'));
fs.writeFileSync(
  path.join(modulesDir, 'modules.dep'),
  [
    'kernel/a/ipip.ko: kernel/a/tunnel4.ko kernel/a/ip_tunnel.ko',
    'kernel/a/tunnel4.ko:',
    'kernel/a/ip_tunnel.ko:',
    'kernel/b/veth.ko:',
    'kernel/c/zipped.ko.xz:',
    '',
  ].join('\n'),
);
fs.writeFileSync(path.join(modulesDir, 'modules.builtin'), 'kernel/net/bridge/bridge.ko\n');
afterAll(() => fs.rmSync(modulesDir, { recursive: true, force: true }));

/** A backend whose "guest" is this function: it gets the scratch dir and acts as the init script would. */
function fake(name: string, guest: (o: BootOptions) => BootResult, missing?: string): GuestBackend & { boots: number } {
  const b = {
    name: name as GuestName,
    probeTimeoutMs: 5_000,
    boots: 0,
    missing: () => missing,
    modulesDir: () => modulesDir,
    mountScratch: () => 'true',
    boot: async (o: BootOptions) => {
      b.boots++;
      return guest(o);
    },
  };
  return b;
}

/** What the init script leaves when the scenario ran: steps, their output, exit status, done. */
function reportSteps(o: BootOptions, steps: Array<[string, number, string]>): BootResult {
  const out = path.join(o.scratch, 'out');
  fs.mkdirSync(out, { recursive: true });
  for (const [name, rc, text] of steps) {
    fs.appendFileSync(path.join(out, 'steps'), `${name} ${rc} 1.00 1.25\n`);
    fs.writeFileSync(path.join(out, `step.${name}.out`), text);
  }
  fs.writeFileSync(path.join(out, 'exit'), '0\n');
  fs.writeFileSync(path.join(out, 'done'), '');
  return { console: 'TSCNI-GUEST-INIT 0.80\nreboot: Power down', killed: false };
}

const boots = (o: BootOptions) => reportSteps(o, [['probe', 0, '6.1.0-test\n']]);
const panics = () => ({
  console: 'Booting the kernel.\nuserspace - ptrace set fp regs failed, errno = 14\nKernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b',
  killed: false,
});
const hangs = () => ({ console: 'Probing EDD (edd=off to disable)... ok', killed: true });

describe('guest probe: the first backend that boots and reports back is chosen', () => {
  it('a booting backend reports its step through the scratch dir, which is removed afterwards', async () => {
    let scratch = '';
    const b = fake('qemu-tcg', (o) => ((scratch = o.scratch), boots(o)));
    const p = await probeBackend(b);
    expect(p).toMatchObject({ name: 'qemu-tcg', booted: true, reason: 'kernel 6.1.0-test' });
    expect(fs.existsSync(scratch)).toBe(false);
  });

  it('a kernel panic, a hang and a failed step are not booted; each says why', async () => {
    const panic = await probeBackend(fake('uml', panics));
    expect(panic.booted).toBe(false);
    expect(panic.reason).toMatch(/ptrace set fp regs failed.*Kernel panic/);
    const hang = await probeBackend(fake('qemu-kvm', hangs));
    expect(hang).toMatchObject({ booted: false, reason: expect.stringContaining('Probing EDD') });
    const stepFails = await probeBackend(fake('qemu-tcg', (o) => reportSteps(o, [['probe', 127, 'uname: not found']])));
    expect(stepFails).toMatchObject({ booted: false, reason: expect.stringContaining('uname: not found') });
    // it came up but reported nothing back: not booted either
    const silent = await probeBackend(fake('qemu-tcg', () => ({ console: 'TSCNI-GUEST-INIT 1.0', killed: false })));
    expect(silent.booted).toBe(false);
  });

  it('a missing package is not tried at all', async () => {
    const b = fake('qemu-tcg', boots, '/usr/bin/qemu-system-x86_64 is missing: apt-get install ...');
    expect(await probeBackend(b)).toMatchObject({ booted: false, reason: expect.stringContaining('is missing') });
    expect(b.boots).toBe(0);
  });

  it('backends are tried in order until one boots; the rest are not booted', async () => {
    const order = [fake('qemu-kvm', hangs), fake('uml', panics), fake('qemu-tcg', boots), fake('uml', boots)];
    const v = await probeGuests({ backends: order, forced: false });
    expect(v.backend).toBe('qemu-tcg');
    expect(v.probes.map((p) => [p.name, p.booted])).toEqual([
      ['qemu-kvm', false],
      ['uml', false],
      ['qemu-tcg', true],
    ]);
    expect(order[3].boots).toBe(0);
    expect(describeVerdict(v)).toMatch(/^guest backend qemu-tcg; qemu-kvm: no .*Probing EDD.*; uml: no .*Kernel panic.*; qemu-tcg: booted/);
  });

  it('none booting leaves no backend, and each reason is kept', async () => {
    const v = await probeGuests({ backends: [fake('uml', panics), fake('qemu-tcg', hangs)], forced: false });
    expect(v.backend).toBeUndefined();
    expect(describeVerdict(v)).toMatch(/^no guest backend boots here; uml: no .*; qemu-tcg: no /);
  });

  it('a guest that booted and then dies in the scenario is a failure of that run, not a skip', async () => {
    const r = await runInGuest({ backend: fake('qemu-tcg', panics), script: 'step a true' });
    expect(r.completed).toBe(false);
    expect(() => stepOf(r, 'a')).toThrow(/guest step a did not run.*Kernel panic/s);
  });

  it('TSCNI_GUEST names the order; qemu means KVM then TCG; an unknown name is an error', () => {
    expect(probeOrder('').forced).toBe(false);
    expect(probeOrder(undefined).backends.map((b) => b.name)).toEqual(['qemu-kvm', 'qemu-tcg', 'uml']);
    expect(probeOrder('qemu').backends.map((b) => b.name)).toEqual(['qemu-kvm', 'qemu-tcg']);
    expect(probeOrder('uml, qemu-tcg')).toMatchObject({ forced: true, backends: [{ name: 'uml' }, { name: 'qemu-tcg' }] });
    expect(() => probeOrder('docker')).toThrow(/unknown guest backend/);
  });

  it('the setup probes only for runs that include a guest test file', () => {
    expect(runIncludesGuests('')).toBe(true);
    expect(runIncludesGuests('e2e/ipip.e2e.ts')).toBe(true);
    expect(runIncludesGuests('ipip')).toBe(true);
    expect(runIncludesGuests('e2e/ptp.e2e.ts')).toBe(false);
    expect(runIncludesGuests('ptp|bridge')).toBe(false);
  });
});

describe('guest kernel modules and initramfs', () => {
  it('modules load dependencies first, skip built-ins, and refuse compressed files busybox cannot insmod', () => {
    const order = moduleLoadOrder(['ipip', 'veth', 'bridge'], modulesDir).map((ko) => path.relative(modulesDir, ko));
    expect(order).toEqual(['kernel/a/tunnel4.ko', 'kernel/a/ip_tunnel.ko', 'kernel/a/ipip.ko', 'kernel/b/veth.ko']);
    expect(() => moduleLoadOrder(['gre'], modulesDir)).toThrow(/neither built into/);
    expect(() => moduleLoadOrder(['zipped'], modulesDir)).toThrow(/compressed/);
  });

  it("the Debian kernel's own ipip, veth and bridge resolve, where it is installed", () => {
    const k = guestKernel();
    if (!k) return console.log('guest kernel modules: no linux-image-amd64 here, checked on the stand-in only');
    const order = moduleLoadOrder(['ipip', 'veth', 'bridge'], k.modulesDir).map((ko) => path.basename(ko));
    expect(order.indexOf('ipip.ko')).toBeGreaterThan(order.indexOf('ip_tunnel.ko'));
    expect(order.indexOf('ip_tunnel.ko')).toBeGreaterThanOrEqual(0);
  });

  it('the initramfs is a cpio newc archive that another reader (busybox cpio) lists as written', async () => {
    const f = path.join(modulesDir, 'initrd.cpio');
    fs.writeFileSync(
      f,
      cpioNewc([
        { name: 'bin', mode: 0o040755 },
        { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
        { name: 'init', mode: 0o100755, data: Buffer.from('#!/bin/busybox sh\necho odd length!\n') },
        { name: 'mods/00-a.ko', mode: 0o100644, data: Buffer.alloc(4097, 7) },
      ]),
    );
    const r = await run('busybox', ['cpio', '-tv', '-F', f]);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/));
    expect(rows.map((x) => [x[0], x[2], x[x.length - 1]])).toEqual([
      ['drwxr-xr-x', '0', 'bin'],
      ['crw-------', '0', 'dev/console'],
      ['-rwxr-xr-x', '35', 'init'],
      ['-rw-r--r--', '4097', 'mods/00-a.ko'],
    ]);
  });
});
