// The floor under our constraints: a Node single-executable application (same Node, same SEA settings as
// tscni) that does only what any plugin driving iproute2 through child processes must do for a bridge pod,
// and nothing else: no config validation, no IPAM (the address comes from the container ID), no masquerade,
// no CHECK, no rollback. The reference does all of those, so this program's time is a lower bound for ours:
// where it misses a target against the reference, no implementation under these constraints can meet it.
// Not a plugin anyone should run: bench/latency.ts times it beside tscni and the reference.
//
// ADD: one `ip -batch` on the node (veth pair with its peer in the pod, on the bridge, up), one in the pod
// (address, up, default route), the result on stdout. DEL: `ip link del` of the host end.
import { spawnSync } from 'child_process';
import { existsSync, readFileSync } from 'fs';

const BRIDGE = 'cni9';

function ipBatch(script: string, netns?: string): void {
  const argv = netns ? ['nsenter', `--net=${netns}`, '--', 'ip', '-batch', '-'] : ['ip', '-batch', '-'];
  const r = spawnSync(argv[0], argv.slice(1), { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr?.toString().trim()}`);
}

function main(): void {
  const env = process.env;
  readFileSync(0); // the config, as a plugin must read it
  // the bench's container IDs are pod<N> or warm<N>: distinct small numbers give distinct names and addresses
  const n = Number(/\d+$/.exec(env.CNI_CONTAINERID ?? '')?.[0] ?? 0) + (env.CNI_CONTAINERID?.startsWith('warm') ? 200 : 2);
  const host = `vfloor${n}`;
  const addr = `10.46.${n >> 8}.${n & 255}`;
  if (env.CNI_COMMAND === 'DEL') {
    const r = spawnSync('ip', ['link', 'del', host], { stdio: ['ignore', 'ignore', 'pipe'] });
    // gone already is fine; any other failure would make the timing meaningless
    if (r.status !== 0 && !/Cannot find device/.test(r.stderr.toString())) throw new Error(`ip link del ${host}: ${r.stderr.toString().trim()}`);
    return;
  }
  if (env.CNI_COMMAND !== 'ADD') throw new Error(`floor: ${env.CNI_COMMAND} is not timed`);
  if (!existsSync(`/sys/class/net/${BRIDGE}`)) ipBatch(`link add ${BRIDGE} type bridge\naddr add 10.46.0.1/16 dev ${BRIDGE}\nlink set ${BRIDGE} up\n`);
  ipBatch(`link add ${host} type veth peer name ${env.CNI_IFNAME} netns ${env.CNI_NETNS}\nlink set ${host} master ${BRIDGE}\nlink set ${host} up\n`);
  ipBatch(`addr add ${addr}/16 dev ${env.CNI_IFNAME}\nlink set ${env.CNI_IFNAME} up\nroute add default via 10.46.0.1\n`, env.CNI_NETNS);
  process.stdout.write(
    JSON.stringify({ cniVersion: '1.0.0', interfaces: [{ name: env.CNI_IFNAME, sandbox: env.CNI_NETNS }], ips: [{ address: `${addr}/16`, interface: 0 }] }),
  );
}

try {
  main();
} catch (e) {
  process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', code: 999, msg: (e as Error).message }));
  process.exitCode = 1;
}
