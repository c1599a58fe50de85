// Real-kernel tests for what this machine's kernel lacks (ipip): a scenario runs inside a guest kernel whose
// root is the host's / read-only, so our build, ip, nsenter and ping are there as they are here. The init script
// mounts tmpfs where things are written and the scratch dir read-write at its own path, so the host and the
// guest name files the same way. Each scenario step leaves its exit code and output in the scratch dir; the host
// parses them after the guest powers off.
//
// Two backends boot such a guest (e2e/lib/guest-qemu.ts, e2e/lib/guest-uml.ts). Which one a run uses is decided
// once, by booting a trivial guest on each in turn (probeGuests, from the e2e globalSetup), and handed to the
// test files through the environment, because a test file's list of tests is decided synchronously.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
export type { GuestBackend, GuestName } from './guest-boot';
import { qemuBackend } from './guest-qemu';
import { umlBackend } from './guest-uml';
import type { GuestBackend, GuestName } from './guest-boot';
import { moduleLoadOrder } from './kmod';
import { CLEAN_PATH, REPO_ROOT } from './world';

const SCRATCH_PREFIX = 'tscni-guest-';
/** the probe's verdict for this run, JSON (GuestVerdict) */
export const GUEST_VERDICT_ENV = 'TSCNI_GUEST_VERDICT';
/** backends to try, in order, comma-separated (default: DEFAULT_ORDER); a forced backend that does not boot fails the tests */
export const GUEST_FORCE_ENV = 'TSCNI_GUEST';
/** the test files that run guests: the globalSetup probes only when the run includes one */
export const GUEST_TEST_FILES = ['e2e/ipip.e2e.ts'];

/**
 * Fastest first: KVM runs the guest near native speed. TCG emulates every instruction but forks cheaply, UML
 * boots faster but pays ptrace for every process: the ipip file took 83 s under TCG and 97 s under UML here
 * (docs in e2e/lib/README.md). Debian's full kernel under QEMU is also the closer one to a real node's.
 */
const DEFAULT_ORDER: GuestName[] = ['qemu-kvm', 'qemu-tcg', 'uml'];

export function backendByName(name: string): GuestBackend {
  switch (name) {
    case 'qemu-kvm':
      return qemuBackend('kvm');
    case 'qemu-tcg':
      return qemuBackend('tcg');
    case 'uml':
      return umlBackend();
    default:
      throw new Error(`${GUEST_FORCE_ENV}=${name}: unknown guest backend (qemu-kvm, uml, qemu-tcg or qemu)`);
  }
}

/** The backends to probe, in order: TSCNI_GUEST when set ('qemu' stands for qemu-kvm then qemu-tcg). */
export function probeOrder(env = process.env[GUEST_FORCE_ENV]): { backends: GuestBackend[]; forced: boolean } {
  if (!env?.trim()) return { backends: DEFAULT_ORDER.map(backendByName), forced: false };
  const names = env
    .split(/[\s,]+/)
    .filter(Boolean)
    .flatMap((n) => (n === 'qemu' ? ['qemu-kvm', 'qemu-tcg'] : [n]));
  return { backends: names.map(backendByName), forced: true };
}

// ---- one guest run

export interface GuestRunOptions {
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
  /** guest memory in MiB (default 512) */
  memMiB?: number;
  /** keep the scratch dir (for debugging); default: removed */
  keep?: boolean;
  /** called with the scratch dir before the guest boots, to write configs that name it */
  prepare?: (scratch: string) => Record<string, string> | void;
  /** the backend to boot (default: the one this run's probe chose) */
  backend?: GuestBackend;
}

export interface GuestStep {
  name: string;
  rc: number;
  out: string;
  /** guest clock, wall time of the step */
  ms: number;
}

export interface GuestRun {
  backend: GuestName;
  /** steps in the order they ran */
  steps: GuestStep[];
  notes: Record<string, string>;
  /** the guest ran the scenario to its end (not killed by either timeout, no crash) */
  completed: boolean;
  /** the guest clock when the init script's first line ran (boot time, firmware not counted), and the whole run */
  bootMs?: number;
  totalMs: number;
  /** the guest console: kernel log and the scenario log, for diagnosis */
  console: string;
  scratch: string;
}

/** One step's record, or a thrown error that shows the console tail (a missing step is a harness failure). */
export function stepOf(r: GuestRun, name: string): GuestStep {
  const s = r.steps.find((x) => x.name === name);
  if (!s)
    throw new Error(
      `guest step ${name} did not run (${r.backend}, completed=${r.completed}); guest console tail:\n${r.console.split('\n').slice(-40).join('\n')}`,
    );
  return s;
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The guest's init once the host's / is its root: the same for every backend but the scratch mount. */
function initScript(scratch: string, mountScratch: string, modules: string[], guestTimeoutSec: number): string {
  const out = path.join(scratch, 'out');
  return `#!/bin/sh
# tscni guest init (generated): set up a writable world, run the scenario, report, power off.
export PATH=${CLEAN_PATH} HOME=/root LANG=C
mount -t proc proc /proc
echo "TSCNI-GUEST-INIT $(cut -d' ' -f1 /proc/uptime)"
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/netns /run/lock
[ -d /dev/shm ] && mount -t tmpfs tmpfs /dev/shm
[ -d /var/lib/cni ] && mount -t tmpfs tmpfs /var/lib/cni
[ -d /etc/cni ] && mount -t tmpfs tmpfs /etc/cni
mkdir -p ${q(scratch)} && ${mountScratch} || echo "TSCNI-GUEST-FATAL cannot mount the scratch dir"
mkdir -p ${q(out)} ${q(path.join(scratch, 'tmp'))}
# /tmp stays the host's (read-only): the build under test may live there; scratch files go to TMPDIR
export TMPDIR=${q(path.join(scratch, 'tmp'))}
ip link set lo up
for ko in ${modules.map(q).join(' ')}; do
  busybox insmod "$ko" || echo "TSCNI-GUEST-INSMOD-FAILED $ko"
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
echo "TSCNI-GUEST-RESULTS-BEGIN"
cat ${q(path.join(out, 'steps'))} 2>/dev/null
echo "TSCNI-GUEST-RESULTS-END"
touch ${q(path.join(out, 'done'))}
sync
busybox poweroff -f
`;
}

function readOr(f: string, dflt = ''): string {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return dflt;
  }
}

function readSteps(out: string): GuestStep[] {
  return readOr(path.join(out, 'steps'))
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name, rc, t0, t1] = line.split(' ');
      return { name, rc: Number(rc), out: readOr(path.join(out, `step.${name}.out`)), ms: Math.round((Number(t1) - Number(t0)) * 1000) };
    });
}

function readNotes(out: string): Record<string, string> {
  const notes: Record<string, string> = {};
  if (!fs.existsSync(out)) return notes;
  for (const f of fs.readdirSync(out)) {
    if (f.startsWith('note.')) notes[f.slice(5)] = fs.readFileSync(path.join(out, f), 'utf8').replace(/\n$/, '');
  }
  return notes;
}

/** Boot a guest, run the scenario, parse its steps. Throws only when the guest cannot be started at all. */
export async function runInGuest(o: GuestRunOptions): Promise<GuestRun> {
  const backend = o.backend ?? (await chosenBackend());
  const why = backend.missing();
  if (why) throw new Error(`guest ${backend.name} unavailable: ${why}`);
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
    const modules = moduleLoadOrder(o.modules ?? [], backend.modulesDir());
    fs.writeFileSync(init, initScript(scratch, backend.mountScratch(scratch), modules, guestTimeoutSec), { mode: 0o755 });

    const t0 = Date.now();
    const boot = await backend.boot({ init, scratch, memMiB: o.memMiB ?? 512, timeoutMs });
    const totalMs = Date.now() - t0;
    const scenarioLog = readOr(path.join(out, 'scenario.log'));
    const up = /TSCNI-GUEST-INIT ([\d.]+)/.exec(boot.console);
    return {
      backend: backend.name,
      steps: readSteps(out),
      notes: readNotes(out),
      // 137: the guest's own timeout killed the scenario
      completed: !boot.killed && fs.existsSync(path.join(out, 'done')) && readOr(path.join(out, 'exit')).trim() !== '137',
      bootMs: up ? Math.round(Number(up[1]) * 1000) : undefined,
      totalMs,
      console: boot.console + (scenarioLog ? `\n--- scenario log ---\n${scenarioLog}` : ''),
      scratch,
    };
  } finally {
    if (!o.keep) fs.rmSync(scratch, { recursive: true, force: true });
  }
}

// ---- choosing a backend, once per run

export interface GuestProbe {
  name: GuestName;
  /** booted: the trivial guest ran its step and reported back through the scratch dir */
  booted: boolean;
  /** why not (missing package, the console's last telling line, time limit) */
  reason?: string;
  ms: number;
}

export interface GuestVerdict {
  /** the first backend that booted; undefined when none did */
  backend?: GuestName;
  /** the backends were named by TSCNI_GUEST */
  forced: boolean;
  probes: GuestProbe[];
}

/** The console line that best says why a guest did not come up: a panic, an error, or the last line. */
function failureLine(console: string): string {
  const lines = console
    .split('\n')
    .map((l) => l.replace(/\s+$/, ''))
    .filter(Boolean);
  const telling = lines.filter((l) => /panic|fatal|error|failed|unable|cannot/i.test(l));
  return (telling.slice(-2).join(' / ') || lines.slice(-1)[0] || 'no console output').slice(0, 300);
}

/** Boot a trivial guest on one backend: it must run a step and report it back through the scratch dir. */
export async function probeBackend(backend: GuestBackend): Promise<GuestProbe> {
  const t0 = Date.now();
  const missing = backend.missing();
  if (missing) return { name: backend.name, booted: false, reason: missing, ms: 0 };
  try {
    const r = await runInGuest({ backend, script: 'step probe uname -r', timeoutMs: backend.probeTimeoutMs });
    const step = r.steps.find((s) => s.name === 'probe');
    const ms = Date.now() - t0;
    if (r.completed && step?.rc === 0) return { name: backend.name, booted: true, ms, reason: `kernel ${step.out.trim()}` };
    const why = r.completed ? `the probe step failed: ${step?.out.trim()}` : failureLine(r.console);
    return {
      name: backend.name,
      booted: false,
      reason: ms >= backend.probeTimeoutMs ? `no power-off within ${backend.probeTimeoutMs / 1000} s: ${why}` : why,
      ms,
    };
  } catch (e) {
    return { name: backend.name, booted: false, reason: (e as Error).message.split('\n')[0], ms: Date.now() - t0 };
  }
}

/** Try the backends in order and stop at the first that boots. */
export async function probeGuests(order = probeOrder()): Promise<GuestVerdict> {
  const probes: GuestProbe[] = [];
  for (const backend of order.backends) {
    const p = await probeBackend(backend);
    probes.push(p);
    if (p.booted) return { backend: backend.name, forced: order.forced, probes };
  }
  return { forced: order.forced, probes };
}

/** One line per probe, for the test log. */
export function describeVerdict(v: GuestVerdict): string {
  const each = v.probes.map((p) => `${p.name}: ${p.booted ? 'booted' : 'no'} (${(p.ms / 1000).toFixed(1)} s${p.reason ? `, ${p.reason}` : ''})`);
  return `${v.backend ? `guest backend ${v.backend}` : 'no guest backend boots here'}${v.forced ? ` (${GUEST_FORCE_ENV}=${process.env[GUEST_FORCE_ENV]})` : ''}; ${each.join('; ')}`;
}

/** For the globalSetup: probe and publish the verdict to the test files. */
export async function publishGuestVerdict(): Promise<GuestVerdict> {
  const v = await probeGuests();
  process.env[GUEST_VERDICT_ENV] = JSON.stringify(v);
  return v;
}

/** This run's verdict (set by the globalSetup), or undefined when nothing probed. Sync, for test lists. */
export function guestVerdict(): GuestVerdict | undefined {
  const v = process.env[GUEST_VERDICT_ENV];
  return v ? (JSON.parse(v) as GuestVerdict) : undefined;
}

/** This run's backend; probed here when the globalSetup did not (a run it did not expect to need guests). */
async function chosenBackend(): Promise<GuestBackend> {
  const v = guestVerdict() ?? (await publishGuestVerdict());
  if (!v.backend) throw new Error(describeVerdict(v));
  return backendByName(v.backend);
}

/** Whether a jest run with this test path pattern includes a guest test file (the probe costs seconds). */
export function runIncludesGuests(testPathPattern: string): boolean {
  if (!testPathPattern) return true;
  try {
    const re = new RegExp(testPathPattern, 'i');
    return GUEST_TEST_FILES.some((f) => re.test(f) || re.test(path.join(REPO_ROOT, f)));
  } catch {
    return true;
  }
}
