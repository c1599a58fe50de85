// The user-mode-linux guest backend: Debian's UML kernel runs as a host process with the host's / as its
// read-only root (hostfs) and the scratch dir mounted read-write through hostfs again. Boots in about 1.5 s.
// On some CPUs it dies before its init runs ("ptrace set fp regs failed"); the probe then passes it over.
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';
import { crashed, type BootOptions, type BootResult, type GuestBackend } from './guest-boot';
import { CLEAN_PATH } from './world';

export const UML_KERNEL = '/usr/bin/linux.uml';
const BUSYBOX = '/usr/bin/busybox';
const UML_MODULES_ROOT = '/usr/lib/uml/modules';

/** The UML kernel's modules directory (the package ships exactly one release). */
function umlModulesDir(): string | undefined {
  let dirs: string[];
  try {
    dirs = fs.readdirSync(UML_MODULES_ROOT).filter((d) => fs.existsSync(path.join(UML_MODULES_ROOT, d, 'modules.dep')));
  } catch {
    return undefined;
  }
  const release = dirs.sort().pop();
  return release && path.join(UML_MODULES_ROOT, release);
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function umlBackend(): GuestBackend {
  return {
    name: 'uml',
    probeTimeoutMs: 30_000,
    missing() {
      if (process.platform !== 'linux' || process.arch !== 'x64') return `user-mode-linux needs linux/x64, this is ${process.platform}/${process.arch}`;
      for (const [f, pkg] of [
        [UML_KERNEL, 'user-mode-linux'],
        [BUSYBOX, 'busybox-static'],
      ]) {
        try {
          fs.accessSync(f, fs.constants.X_OK);
        } catch {
          return `${f} is missing: apt-get install -y --no-install-recommends ${pkg}`;
        }
      }
      if (!umlModulesDir()) return `no UML kernel modules under ${UML_MODULES_ROOT}`;
      if (process.getuid?.() !== 0)
        return 'the guest scenarios create namespaces and tunnels as root inside the guest and need root to mount the scratch dir: run as root';
      return undefined;
    },
    modulesDir() {
      const d = umlModulesDir();
      if (!d) throw new Error(`no UML kernel modules under ${UML_MODULES_ROOT}`);
      return d;
    },
    mountScratch(scratch) {
      return `mount -t hostfs -o ${q(scratch)} none ${q(scratch)}`;
    },
    async boot(o: BootOptions): Promise<BootResult> {
      try {
        const r = await run(
          UML_KERNEL,
          [`mem=${o.memMiB}M`, 'rootfstype=hostfs', 'rootflags=/', 'ro', `init=${o.init}`, 'con=null', 'con0=null,fd:1'],
          // TMPDIR: where UML keeps its memory file; stdin /dev/null (an empty input), no terminal
          { timeout: o.timeoutMs, allowFailure: true, input: '', env: { PATH: CLEAN_PATH, TMPDIR: o.scratch, HOME: o.scratch } },
        );
        return { console: r.stdout + r.stderr, killed: false };
      } catch (e) {
        return crashed(e);
      }
    },
  };
}
