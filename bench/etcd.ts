// Cluster mode through etcd at scale: with N nodes registered (records only; their nodes need not exist), the
// time from a new node's registration to its route on an existing node running `tscni etcd run`, and from a
// record's removal to its route's. One etcd member and one agent, each in a throwaway namespace.
//
// usage (root): node etcd.js --bin <dir> [--records 200] [--rounds 5]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn } from 'child_process';
import { run } from '../pkg/exec';

const SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ip = (args: string[]) => run('ip', args);

async function main(): Promise<void> {
  const bin = path.resolve(arg('bin', 'build/bin'));
  const records = Number(arg('records', '200'));
  const rounds = Number(arg('rounds', '5'));
  const prefix = process.env.BENCH_PREFIX ?? `tscni-t-etcd${process.pid}`;
  const [ens, nns] = [`${prefix}-e0`, `${prefix}-n0`];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-bench-etcd-'));
  const procs: ReturnType<typeof spawn>[] = [];
  const bg = (ns: string, argv: string[]) => {
    const p = spawn('ip', ['netns', 'exec', ns, 'env', '-i', `PATH=${SBIN_PATH}`, ...argv], { stdio: 'ignore' });
    procs.push(p);
    return p;
  };
  const ctl = (args: string[]) => run('ip', ['netns', 'exec', ens, 'env', 'ETCDCTL_API=3', 'etcdctl', '--endpoints=http://10.98.0.1:2379', ...args]);
  const routeOf = async (cidr: string) => JSON.parse((await ip(['-n', nns, '-j', 'route', 'show', cidr])).stdout) as unknown[];
  const waitRoute = async (cidr: string, present: boolean) => {
    const t0 = process.hrtime.bigint();
    for (;;) {
      if ((await routeOf(cidr)).length > 0 === present) return Number(process.hrtime.bigint() - t0) / 1e6;
      if (Number(process.hrtime.bigint() - t0) > 30e9) throw new Error(`route ${cidr} ${present ? 'never came' : 'never went'}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  // peer i: node 10.98.(i / 200 + 1).(i % 200 + 1), pod CIDR 10.(i / 256 + 1).(i % 256).0/24
  const record = (i: number) => ({
    key: `/bench/subnets/10.${(i >> 8) + 1}.${i & 255}.0-24`,
    value: JSON.stringify({ node: `n${i}`, nodeIP: `10.98.${Math.floor(i / 200) + 1}.${(i % 200) + 1}`, podCIDR: `10.${(i >> 8) + 1}.${i & 255}.0/24` }),
    cidr: `10.${(i >> 8) + 1}.${i & 255}.0/24`,
  });
  try {
    for (const ns of [ens, nns]) {
      await ip(['netns', 'add', ns]);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await ip(['-n', ens, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nns]);
    await ip(['-n', ens, 'addr', 'add', '10.98.0.1/16', 'dev', 'eth0']);
    await ip(['-n', nns, 'addr', 'add', '10.98.0.2/16', 'dev', 'eth0']);
    for (const ns of [ens, nns]) await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    bg(ens, [
      'etcd',
      '--name',
      'b0',
      '--data-dir',
      path.join(work, 'etcd'),
      '--listen-client-urls',
      'http://10.98.0.1:2379',
      '--advertise-client-urls',
      'http://10.98.0.1:2379',
      '--listen-peer-urls',
      'http://10.98.0.1:2380',
      '--initial-advertise-peer-urls',
      'http://10.98.0.1:2380',
      '--initial-cluster',
      'b0=http://10.98.0.1:2380',
    ]);
    for (let i = 0; ; i++) {
      if (
        await ctl(['endpoint', 'health']).then(
          (r) => `${r.stdout}${r.stderr}`.includes('is healthy'),
          () => false,
        )
      )
        break;
      if (i > 100) throw new Error('etcd did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
    // the registered nodes, four etcdctl at a time
    for (let i = 0; i < records; i += 4) {
      await Promise.all(Array.from({ length: Math.min(4, records - i) }, (_, k) => ctl(['put', record(i + k).key, record(i + k).value])));
    }
    const template = path.join(work, 'template.conflist');
    fs.writeFileSync(
      template,
      JSON.stringify({
        cniVersion: '1.1.0',
        name: 'bench',
        plugins: [{ type: 'vxlan', nodeIP: '{{nodeIP}}', podCIDR: '{{podCIDR}}', clusterCIDR: '{{clusterCIDR}}', peersFile: '{{peersFile}}' }],
      }),
    );
    const conf = path.join(work, 'agent.json');
    fs.writeFileSync(
      conf,
      JSON.stringify({
        endpoints: ['http://10.98.0.1:2379'],
        prefix: '/bench',
        clusterCIDR: '10.0.0.0/8',
        subnetLen: 24,
        leaseTTL: 10,
        nodeName: 'self',
        nodeIP: '10.98.0.2',
        template,
        conflist: path.join(work, 'net.d', 'tscni.conflist'),
        peersFile: path.join(work, 'peers.json'),
        stateFile: path.join(work, 'state'),
      }),
    );
    const t0 = Date.now();
    bg(nns, [path.join(bin, 'tscni'), 'etcd', 'run', '--conf', conf]);
    await waitRoute(record(records - 1).cidr, true);
    const joinAll = Date.now() - t0;
    const add: number[] = [];
    const del: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const x = record(records + r);
      await ctl(['put', x.key, x.value]);
      add.push(await waitRoute(x.cidr, true));
      await ctl(['del', x.key]);
      del.push(await waitRoute(x.cidr, false));
    }
    console.log(`etcd: ${records} registered nodes, one agent (vxlan), one etcd member; ms, median of ${rounds}`);
    console.log(`  agent start to all ${records} peers routed: ${joinAll} ms`);
    console.log(`  a new node's record to its route on the agent's node: ${median(add).toFixed(0)} ms (${add.map((x) => x.toFixed(0)).join(' ')})`);
    console.log(`  a record's removal to its route's removal: ${median(del).toFixed(0)} ms (${del.map((x) => x.toFixed(0)).join(' ')})`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    for (const ns of [ens, nns]) await ip(['netns', 'del', ns]).catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench etcd: ${(e as Error).message}`);
  process.exitCode = 1;
});
