// Real-kernel tests for what this machine's kernel lacks (ipip): run a scenario inside a user-mode-linux guest.
// The guest's root is the host's / read-only (hostfs), so our build, ip, nsenter and ping are there as they are
// here; the init script mounts tmpfs where things are written and the scratch dir read-write at its own path, so
// the host and the guest name files the same way. Each scenario step leaves its exit code and output in the
// scratch dir (also echoed on the console as a result block); the host parses them after the guest powers off.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { run } from '../../pkg/exec';

export const UML_KERNEL = '/usr/bin/linux.uml';
export const BUSYBOX = '/usr/bin/busybox';
const UML_MODULES_ROOT = '/usr/lib/uml/modules';
const SCRATCH_PREFIX = 'tscni-uml-';
/** what the guest finds on PATH: system tools only, as a runtime gives a CNI plugin */
const GUEST_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export interface UmlAvailability {
  ok: boolean;
  /** why the guest cannot start here (only when !ok) */
  reason?: string;
  /** the UML kernel's release (its modules directory) */
  release?: string;
}

/** The UML kernel release, from its modules directory (the package ships exactly one). */
function umlRelease(): string | undefined {
  let dirs: string[];
  try {
    dirs = fs.readdirSync(UML_MODULES_ROOT).filter((d) => fs.existsSync(path.join(UML_MODULES_ROOT, d, 'modules.dep')));
  } catch {
    return undefined;
  }
  return dirs.sort().pop();
}

/**
 * Can a guest start here? Synchronous and spawn-free, so a test file can decide at load time whether to define
 * its tests or skip them with this reason. A guest that then fails to boot is a test failure, not a skip.
 */
export function umlAvailable(): UmlAvailability {
  const no = (reason: string): UmlAvailability => ({ ok: false, reason });
  if (process.platform !== 'linux' || process.arch !== 'x64') return no(`user-mode-linux needs linux/x64, this is ${process.platform}/${process.arch}`);
  for (const [f, pkg] of [[UML_KERNEL, 'user-mode-linux'], [BUSYBOX, 'busybox-static']]) {
    try {
      fs.accessSync(f, fs.constants.X_OK);
    } catch {
      return no(`${f} is missing: apt-get install -y --no-install-recommends ${pkg}`);
    }
  }
  const release = umlRelease();
  if (!release) return no(`no UML kernel modules under ${UML_MODULES_ROOT}`);
  if (process.getuid?.() !== 0) return no('the guest scenarios create namespaces and tunnels as root inside the guest and need root to mount the scratch dir: run as root');
  return { ok: true, release };
}

/** modules.dep of the UML kernel: module name -> [its .ko path, its dependencies' .ko paths]. */
function readModulesDep(release: string): Map<string, { ko: string; deps: string[] }> {
  const dir = path.join(UML_MODULES_ROOT, release);
  const m = new Map<string, { ko: string; deps: string[] }>();
  for (const line of fs.readFileSync(path.join(dir, 'modules.dep'), 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const ko = line.slice(0, i).trim();
    const deps = line.slice(i + 1).trim().split(/\s+/).filter(Boolean);
    m.set(path.basename(ko, '.ko').replace(/-/g, '_'), { ko: path.join(dir, ko), deps: deps.map((d) => path.join(dir, d)) });
  }
  return m;
}

function builtinModules(release: string): Set<string> {
  try {
    const t = fs.readFileSync(path.join(UML_MODULES_ROOT, release, 'modules.builtin'), 'utf8');
    return new Set(t.split('\n').filter(Boolean).map((l) => path.basename(l, '.ko').replace(/-/g, '_')));
  } catch {
    return new Set();
  }
}

/**
 * The .ko files to insmod, dependencies first, for modules given by name (`ipip`, `veth`, `bridge`); built-in
 * ones are skipped. modules.dep lists a module's full dependency closure, so each dependency is loaded by its own
 * entry first (depth first), which gives the order modprobe would use.
 */
export function moduleLoadOrder(names: readonly string[], release = umlRelease()): string[] {
  if (!release) throw new Error(`no UML kernel modules under ${UML_MODULES_ROOT}`);
  const dep = readModulesDep(release);
  const builtin = builtinModules(release);
  const byKo = new Map([...dep.values()].map((v) => [v.ko, v]));
  const order: string[] = [];
  const visit = (ko: string, stack: string[]) => {
    if (order.includes(ko) || stack.includes(ko)) return;
    const e = byKo.get(ko);
    for (const d of e?.deps ?? []) visit(d, [...stack, ko]);
    order.push(ko);
  };
  for (const n of names) {
    const key = n.replace(/-/g, '_');
    if (builtin.has(key)) continue;
    const e = dep.get(key);
    if (!e) throw new Error(`module ${n} is neither built into the UML kernel ${release} nor in its modules.dep`);
    visit(e.ko, []);
  }
  return order;
}

export interface UmlRunOptions {
  /**
   * Shell (sh) run inside the guest after set-up. It reports through `step <name> <cmd...>` (records the exit code
   * and output of one command) and `note <name> <value>` (records a value). Runs in a subshell under `timeout`,
   * so an `exit` or a hang still reaches poweroff. A function gets the scratch dir (to name files in it).
   */
  script: string | ((scratch: string) => string);
  /** kernel modules to load by name, dependencies resolved from modules.dep (default: none) */
  modules?: readonly string[];
  /** files to write into the scratch dir first (relative names); the guest sees them at the same path */
  files?: Record<string, string>;
  /** hard limit for the whole guest, boot included (default 90 s) */
  timeoutMs?: number;
  /** guest memory (default 256M) */
  mem?: string;
  /** keep the scratch dir (for debugging); default: removed */
  keep?: boolean;
  /** called with the scratch dir before the guest boots, to write configs that name it */
  prepare?: (scratch: string) => Record<string, string> | void;
}

export interface UmlStep {
  name: string;
  rc: number;
  out: string;
  /** guest clock, wall time of the step */
  ms: number;
}

export interface UmlRun {
  /** steps in the order they ran */
  steps: UmlStep[];
  notes: Record<string, string>;
  /** the guest ran the scenario to its end (not killed by either timeout, no crash) */
  completed: boolean;
  /** wall time from spawning the kernel to the init script's first line, and the whole run */
  bootMs?: number;
  totalMs: number;
  /** the guest console: kernel log and the result block, for diagnosis */
  console: string;
  scratch: string;
}

/** One step's record, or a thrown error that shows the console tail (a missing step is a harness failure). */
export function stepOf(r: UmlRun, name: string): UmlStep {
  const s = r.steps.find((x) => x.name === name);
  if (!s) throw new Error(`UML step ${name} did not run (completed=${r.completed}); guest console tail:\n${r.console.split('\n').slice(-40).join('\n')}`);
  return s;
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function initScript(scratch: string, modules: string[], guestTimeoutSec: number): string {
  const out = path.join(scratch, 'out');
  return `#!/bin/sh
# tscni UML init (generated): set up a writable world, run the scenario, report, power off.
export PATH=${GUEST_PATH} HOME=/root LANG=C
mount -t proc proc /proc
echo "TSCNI-UML-INIT $(cut -d' ' -f1 /proc/uptime)"
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/netns /run/lock
[ -d /dev/shm ] && mount -t tmpfs tmpfs /dev/shm
[ -d /var/lib/cni ] && mount -t tmpfs tmpfs /var/lib/cni
[ -d /etc/cni ] && mount -t tmpfs tmpfs /etc/cni
mkdir -p ${q(scratch)} && mount -t hostfs -o ${q(scratch)} none ${q(scratch)} || echo "TSCNI-UML-FATAL cannot mount the scratch dir"
mkdir -p ${q(out)} ${q(path.join(scratch, 'tmp'))}
# /tmp stays the host's (read-only): the build under test may live there; scratch files go to TMPDIR
export TMPDIR=${q(path.join(scratch, 'tmp'))}
ip link set lo up
for ko in ${modules.map(q).join(' ')}; do
  busybox insmod "$ko" || echo "TSCNI-UML-INSMOD-FAILED $ko"
done
OUT=${q(out)}
export OUT
timeout -s KILL ${guestTimeoutSec} sh -c '
OUT="$1"
step() {
  __step="$1"; shift
  read __t0 __x < /proc/uptime
  "$@" > "$OUT/step.$__step.out" 2>&1 < /dev/null
  __rc=$?
  read __t1 __x < /proc/uptime
  echo "$__step $__rc $__t0 $__t1" >> "$OUT/steps"
  return 0
}
note() { __note="$1"; shift; printf "%s\\n" "$*" > "$OUT/note.$__note"; }
. "$2"
' scenario ${q(out)} ${q(path.join(scratch, 'scenario.sh'))} > ${q(path.join(out, 'scenario.log'))} 2>&1
__x=$?
echo "scenario exit $__x" >> ${q(path.join(out, 'scenario.log'))}
echo $__x > ${q(path.join(out, 'exit'))}
echo "TSCNI-UML-RESULTS-BEGIN"
cat ${q(path.join(out, 'steps'))} 2>/dev/null
echo "TSCNI-UML-RESULTS-END"
touch ${q(path.join(out, 'done'))}
sync
busybox poweroff -f
`;
}

function readOr(f: string): string {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

/** Boot a guest, run the scenario, parse its steps. Throws only when the guest cannot be started at all. */
export async function runInUml(o: UmlRunOptions): Promise<UmlRun> {
  const avail = umlAvailable();
  if (!avail.ok) throw new Error(`UML unavailable: ${avail.reason}`);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), SCRATCH_PREFIX));
  const out = path.join(scratch, 'out');
  const timeoutMs = o.timeoutMs ?? 90_000;
  try {
    const files = { ...(o.files ?? {}), ...(o.prepare?.(scratch) ?? {}) };
    for (const [name, text] of Object.entries(files)) {
      const f = path.join(scratch, name);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, text);
    }
    fs.writeFileSync(path.join(scratch, 'scenario.sh'), typeof o.script === 'function' ? o.script(scratch) : o.script);
    const init = path.join(scratch, 'init');
    // the guest's own limit is shorter than ours, so a hung scenario still gets its results out
    const guestTimeoutSec = Math.max(5, Math.floor(timeoutMs / 1000) - 15);
    fs.writeFileSync(init, initScript(scratch, moduleLoadOrder(o.modules ?? [], avail.release), guestTimeoutSec), { mode: 0o755 });

    const t0 = Date.now();
    let consoleText = '';
    let killed = false;
    try {
      const r = await run(
        UML_KERNEL,
        [`mem=${o.mem ?? '256M'}`, 'rootfstype=hostfs', 'rootflags=/', 'ro', `init=${init}`, 'con=null', 'con0=null,fd:1'],
        // TMPDIR: where UML keeps its memory file; stdin /dev/null (an empty input), no terminal
        { timeout: timeoutMs, allowFailure: true, input: '', env: { PATH: GUEST_PATH, TMPDIR: scratch, HOME: scratch } },
      );
      consoleText = r.stdout + r.stderr;
    } catch (e) {
      killed = true;
      consoleText = `(guest killed: ${(e as Error).message})`;
    }
    const totalMs = Date.now() - t0;
    const steps: UmlStep[] = [];
    let stepsText = '';
    try {
      stepsText = fs.readFileSync(path.join(out, 'steps'), 'utf8');
    } catch {
      /* no step ran */
    }
    for (const line of stepsText.split('\n').filter(Boolean)) {
      const [name, rc, t0, t1] = line.split(' ');
      let text = '';
      try {
        text = fs.readFileSync(path.join(out, `step.${name}.out`), 'utf8');
      } catch {
        /* empty */
      }
      steps.push({ name, rc: Number(rc), out: text, ms: Math.round((Number(t1) - Number(t0)) * 1000) });
    }
    const notes: Record<string, string> = {};
    if (fs.existsSync(out)) {
      for (const f of fs.readdirSync(out)) {
        if (f.startsWith('note.')) notes[f.slice(5)] = fs.readFileSync(path.join(out, f), 'utf8').replace(/\n$/, '');
      }
    }
    let scenarioLog = '';
    try {
      scenarioLog = fs.readFileSync(path.join(out, 'scenario.log'), 'utf8');
    } catch {
      /* none */
    }
    // boot time: the guest clock at init is close to wall time since spawn (UML counts from its own start)
    const up = /TSCNI-UML-INIT ([\d.]+)/.exec(consoleText);
    return {
      steps,
      notes,
      // 137: the guest's own timeout killed the scenario
      completed: !killed && fs.existsSync(path.join(out, 'done')) && readOr(path.join(out, 'exit')).trim() !== '137',
      bootMs: up ? Math.round(Number(up[1]) * 1000) : undefined,
      totalMs,
      console: consoleText + (scenarioLog ? `\n--- scenario log ---\n${scenarioLog}` : ''),
      scratch,
    };
  } finally {
    if (!o.keep) fs.rmSync(scratch, { recursive: true, force: true });
  }
}
