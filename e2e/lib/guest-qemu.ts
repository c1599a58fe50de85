// The QEMU guest backend: Debian's own kernel (linux-image-amd64), booted under KVM or TCG (software
// emulation), with an initramfs of busybox and the virtio and 9p modules that mounts the host's / read-only over
// 9p and switches to it. The scratch dir is a second, writable 9p export mounted at its own path by the init
// script. The console goes to a file in the scratch dir, so it survives a guest killed at its time limit.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { crashed, type BootOptions, type BootResult, type GuestBackend } from './guest-boot';
import { moduleLoadOrder } from './kmod';

export const QEMU = '/usr/bin/qemu-system-x86_64';
const BUSYBOX = '/usr/bin/busybox';
const MODULES_ROOT = '/lib/modules';
/** what the initramfs loads to reach the host's / (each with its dependencies) */
const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p'];
const ROOT_TAG = 'hostroot';
const SCRATCH_TAG = 'scratch';
const MSIZE = 262144;
const INSTALL_HINT = 'apt-get install -y --no-install-recommends qemu-system-x86 linux-image-amd64';

/** Kernel release strings in version order ('6.1.0-9-amd64' < '6.1.0-57-amd64'). */
function byVersion(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The newest /boot/vmlinuz-<release> whose modules (with 9p) are installed: Debian's kernel, not the host's own. */
export function guestKernel(): { kernel: string; modulesDir: string } | undefined {
  let names: string[];
  try {
    names = fs.readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-'));
  } catch {
    return undefined;
  }
  for (const release of names
    .map((f) => f.slice('vmlinuz-'.length))
    .sort(byVersion)
    .reverse()) {
    const modulesDir = path.join(MODULES_ROOT, release);
    try {
      if (/\/9p\.ko/.test(fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8'))) return { kernel: `/boot/vmlinuz-${release}`, modulesDir };
    } catch {
      /* no modules for this one */
    }
  }
  return undefined;
}

// ---- initramfs: a cpio "newc" archive, written here so no cpio program is needed

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  /** device number of a character device */
  rdev?: [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 }]) {
    const data = 'data' in e && e.data ? e.data : Buffer.alloc(0);
    const rdev = ('rdev' in e && e.rdev) || [0, 0];
    const name = Buffer.from(e.name + '\0');
    const fields = [ino++, e.mode, 0, 0, e.mode & S_IFDIR ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1], name.length, 0];
    const header = Buffer.from('070701' + fields.map(hex).join(''), 'ascii');
    parts.push(header, name, Buffer.alloc(pad4(header.length + name.length)), data, Buffer.alloc(pad4(data.length)));
  }
  return Buffer.concat(parts);
}

/** busybox, the modules that reach 9p, and an /init that mounts the host's / and switches to the init script. */
function initramfs(modulesDir: string, init: string): Buffer {
  const mods = moduleLoadOrder(BOOT_MODULES, modulesDir);
  const modName = (ko: string, i: number) => `mods/${String(i).padStart(2, '0')}-${path.basename(ko)}`;
  const initSh = `#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t devtmpfs devtmpfs /dev
for ko in /mods/*.ko; do $B insmod "$ko" || echo "TSCNI-GUEST-FATAL insmod $ko failed"; done
# the host's files do not change under a run (the scratch dir is another mount): the guest may cache them
if $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=${MSIZE} ${ROOT_TAG} /newroot; then
  $B mount --move /dev /newroot/dev
  $B umount /proc
  exec $B switch_root /newroot ${init}
fi
echo "TSCNI-GUEST-FATAL cannot mount the host root over 9p"
$B poweroff -f
`;
  return cpioNewc([
    ...['bin', 'dev', 'proc', 'sys', 'newroot', 'mods'].map((name) => ({ name, mode: S_IFDIR | 0o755 })),
    { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
    { name: 'bin/busybox', mode: S_IFREG | 0o755, data: fs.readFileSync(BUSYBOX) },
    { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(initSh) },
    ...mods.map((ko, i) => ({ name: modName(ko, i), mode: S_IFREG | 0o644, data: fs.readFileSync(ko) })),
  ]);
}

function kvmUsable(): string | undefined {
  try {
    fs.closeSync(fs.openSync('/dev/kvm', 'r+'));
    return undefined;
  } catch (e) {
    return `/dev/kvm cannot be opened: ${(e as NodeJS.ErrnoException).code}`;
  }
}

export function qemuBackend(accel: 'kvm' | 'tcg'): GuestBackend {
  return {
    name: accel === 'kvm' ? 'qemu-kvm' : 'qemu-tcg',
    // a KVM guest powers off within a few seconds; a hung one (seen on some nested hosts) is cut short
    probeTimeoutMs: accel === 'kvm' ? 15_000 : 60_000,
    missing() {
      if (process.platform !== 'linux' || process.arch !== 'x64') return `the QEMU guest needs linux/x64, this is ${process.platform}/${process.arch}`;
      for (const f of [QEMU, BUSYBOX]) {
        try {
          fs.accessSync(f, fs.constants.X_OK);
        } catch {
          return `${f} is missing: ${INSTALL_HINT} busybox-static`;
        }
      }
      const k = guestKernel();
      if (!k) return `no /boot/vmlinuz-* with its modules (9p among them) under ${MODULES_ROOT}: ${INSTALL_HINT}`;
      try {
        fs.accessSync(k.kernel, fs.constants.R_OK);
      } catch {
        return `${k.kernel} is not readable: run as root`;
      }
      if (process.getuid?.() !== 0) return 'the guest scenarios create namespaces and tunnels as root inside the guest: run as root';
      return accel === 'kvm' ? kvmUsable() : undefined;
    },
    modulesDir() {
      const k = guestKernel();
      if (!k) throw new Error(`no guest kernel: ${INSTALL_HINT}`);
      return k.modulesDir;
    },
    mountScratch(scratch) {
      return `mount -t 9p -o trans=virtio,version=9p2000.L,msize=${MSIZE} ${SCRATCH_TAG} '${scratch.replace(/'/g, `'\\''`)}'`;
    },
    async boot(o: BootOptions): Promise<BootResult> {
      const k = guestKernel();
      if (!k) throw new Error(`no guest kernel: ${INSTALL_HINT}`);
      const initrd = path.join(o.scratch, 'initrd.cpio');
      const consoleFile = path.join(o.scratch, 'console');
      fs.writeFileSync(initrd, initramfs(k.modulesDir, o.init));
      const args = [
        ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
        '-m',
        String(o.memMiB),
        '-smp',
        '2',
        '-nodefaults',
        '-no-reboot',
        '-display',
        'none',
        '-monitor',
        'none',
        '-serial',
        `file:${consoleFile}`,
        '-kernel',
        k.kernel,
        '-initrd',
        initrd,
        '-append',
        'console=ttyS0 panic=-1 quiet',
        // several host filesystems sit under /: remap keeps their inode numbers apart in the guest
        '-virtfs',
        `local,path=/,mount_tag=${ROOT_TAG},security_model=none,readonly=on,multidevs=remap`,
        '-virtfs',
        `local,path=${o.scratch},mount_tag=${SCRATCH_TAG},security_model=none,multidevs=remap`,
      ];
      let end: BootResult;
      try {
        const r = await run(QEMU, args, { timeout: o.timeoutMs, allowFailure: true });
        end = { console: r.stderr + (r.exitCode === 0 ? '' : `\n(qemu exit ${r.exitCode})`), killed: false };
      } catch (e) {
        end = crashed(e);
      }
      let text = '';
      try {
        text = fs.readFileSync(consoleFile, 'utf8');
      } catch {
        /* qemu did not start */
      }
      return { console: `${text}\n${end.console}`.trim(), killed: end.killed };
    },
  };
}
