// `tscni doctor --conf <file> [--pod <id>[:<ifname>][=<netns>]]... [--netns <node netns>] [--json]`: compare what the
// config's plan says the node and its pods should hold with what the kernel holds; print what is missing or wrong.
import * as path from 'path';
import { CniError } from '../pkg/cni/errors';
import type { PodRef } from './doctor/doctor';

export const USAGE = `usage: tscni doctor --conf <conflist or conf file> [--pod <containerID>[:<ifname>][=<netns path>]]... [--fabric <file>] [--netns <node netns>] [--json]

Compares what the network config plans (bridge, gateway address, forwarding, the fabric's routes, neighbour and
FDB entries, tunnel device, MTU and rp_filter, each pod's veth, addresses, routes, sysctls and masquerade rule)
with what the kernel holds, and prints one line per difference, then a summary.

  --conf <file>   a .conf, or a .conflist (its first bridge/ptp/host-gw/vxlan/ipip plugin)
  --pod <id>      check this pod (repeatable; ifname defaults to eth0); without --pod, every pod host-local
                  holds an address for in this network is checked. The pod's netns is found from its node
                  veth; give it after '=' when it is not a named netns (/var/run/netns).
  --fabric <file> also check the fabric of this host-gw/vxlan/ipip config, without its pods: the node routes
                  the Kubernetes manifest keeps beside ptp pods (/etc/cni/tscni-fabric.json)
  --netns <ns>    run in this node namespace (a name or /var/run/netns/<name>) instead of the current one
  --json          print {network, type, pods, findings: [{where, problem, pod?, peer?}]} instead of lines

Run it where the plugins run: in the node's network namespace, as root.
Exit status: 0 all as planned, 1 something is missing or wrong, 2 usage or config error.`;

interface Opts {
  conf: string;
  fabric?: string;
  pods?: PodRef[];
  netns?: string;
  json: boolean;
}

export function parseDoctorArgs(argv: string[]): Opts | string {
  const o: Opts = { conf: '', json: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined || v === '') throw new Error(`${k} needs a value`);
      return v;
    };
    try {
      if (k === '--conf') o.conf = val();
      else if (k === '--fabric') o.fabric = val();
      else if (k === '--netns') o.netns = val();
      else if (k === '--json') o.json = true;
      else if (k === '--pod') {
        const m = /^([^:=]+)(?::([^=]+))?(?:=(.+))?$/.exec(val());
        if (!m) return `--pod ${argv[i]}: expected <containerID>[:<ifname>][=<netns path>]`;
        (o.pods ??= []).push({ id: m[1], ifName: m[2] ?? 'eth0', ...(m[3] ? { netns: m[3] } : {}) });
      } else if (k === '-h' || k === '--help') return '';
      else return `unknown argument ${JSON.stringify(k)}`;
    } catch (e) {
      return (e as Error).message;
    }
  }
  if (!o.conf) return '--conf is required';
  return o;
}

/** Run ourselves again inside the node namespace: `ip netns exec` also gives /sys of that namespace. */
async function inNodeNetns(netns: string, argv: string[]): Promise<number> {
  const name = netns.startsWith('/var/run/netns/') || netns.startsWith('/run/netns/') ? path.basename(netns) : netns;
  if (name.includes('/')) {
    process.stderr.write(`tscni doctor: --netns ${netns}: give a named netns (ip netns); for another path run doctor under nsenter with /sys remounted\n`);
    return 2;
  }
  // a SEA executable is its own program; a bundle runs under node
  const self = /\.js$/.test(process.argv[1] ?? '') ? [process.execPath, process.argv[1]] : [process.execPath];
  const rest = argv.filter((x, i) => x !== '--netns' && argv[i - 1] !== '--netns');
  const { runInNamedNetns } = require('../pkg/ip/netns') as typeof import('../pkg/ip/netns');
  const r = await runInNamedNetns(name, [...self, 'doctor', ...rest], 120_000);
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  return r.exitCode;
}

export async function doctorMain(argv: string[]): Promise<number> {
  const o = parseDoctorArgs(argv);
  if (typeof o === 'string') {
    process.stderr.write(o ? `tscni doctor: ${o}\n${USAGE}\n` : `${USAGE}\n`);
    return o ? 2 : 0;
  }
  if (o.netns) return inNodeNetns(o.netns, argv);
  const d = require('./doctor/doctor') as typeof import('./doctor/doctor');
  let report: import('./doctor/doctor').DoctorReport;
  try {
    report = await d.doctor(d.loadConf(o.conf), o.pods, o.fabric ? { fabric: d.loadConf(o.fabric) } : {});
  } catch (e) {
    process.stderr.write(`tscni doctor: ${e instanceof CniError || e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  const n = report.findings.length;
  if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else {
    const lines = report.findings.map(d.formatFinding);
    const what = `${report.type} network ${report.network}: node and ${report.pods.length} pod(s) checked`;
    lines.push(n ? `${what}: ${n} problem(s)` : `${what}: all as planned`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  return n ? 1 : 0;
}
