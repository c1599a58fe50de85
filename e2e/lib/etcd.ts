// Real etcd (Debian's etcd-server) for the e2e: members in their own namespaces on a simulated underlay, and
// background processes (etcd, tscni agents) stopped at the world's cleanup.
import { spawn, type ChildProcess } from 'child_process';
import * as path from 'path';
import { CLEAN_PATH, type Netns, type World } from './world';
import { waitFor } from './wait';

export interface Background {
  proc: ChildProcess;
  output(): string;
  /** resolves with the exit code (or the signal's name) */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** A long-running program inside `ns` with a clean environment; killed at cleanup if still running. */
export function background(world: World, ns: Netns, argv: string[], env: Record<string, string> = {}): Background {
  const vars = Object.entries({ PATH: CLEAN_PATH, ...env }).map(([k, v]) => `${k}=${v}`);
  const proc = spawn('ip', ['netns', 'exec', ns.name, 'env', '-i', ...vars, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((r) => proc.on('exit', (code, sig) => r(code ?? sig ?? -1)));
  const b: Background = {
    proc,
    output: () => out,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  world.onCleanup(() => b.stop('SIGKILL'));
  return b;
}

export interface EtcdMember {
  name: string;
  ns: Netns;
  ip: string;
  proc: Background;
  clientURL: string;
  /** its command line, to start it again on the same data */
  argv: string[];
}

/** Start stopped members again on their data; resolves when all serve clients (which needs their quorum). */
export async function restartEtcd(world: World, members: EtcdMember[]): Promise<void> {
  for (const m of members) m.proc = background(world, m.ns, m.argv);
  for (const m of members) {
    await waitFor(() => /ready to serve client requests/.test(m.proc.output()) || m.proc.proc.exitCode !== null, 20_000, `etcd ${m.name} ready again`);
    if (m.proc.proc.exitCode !== null) throw new Error(`etcd ${m.name} exited: ${m.proc.output().slice(-2000)}`);
  }
}

/** `etcdctl <args>` against the members, from inside a member's namespace. */
export async function etcdctl(members: EtcdMember[], args: string[]): Promise<string> {
  const { run } = await import('../../pkg/exec');
  const r = await run('ip', [
    'netns',
    'exec',
    members[0].ns.name,
    'env',
    `ETCDCTL_API=3`,
    'etcdctl',
    `--endpoints=${members.map((m) => m.clientURL).join(',')}`,
    ...args,
  ]);
  return r.stdout;
}

/**
 * Start a cluster of etcd members at the given addresses, each in `nsOf(i)` (already wired to the underlay), data
 * in the world's temp dirs. Resolves when every member answers its health endpoint.
 */
export async function startEtcd(
  world: World,
  members: Array<{ ns: Netns; ip: string }>,
  o: { tls?: { ca: string; cert: string; key: string } } = {},
): Promise<EtcdMember[]> {
  const scheme = o.tls ? 'https' : 'http';
  const names = members.map((_, i) => `m${i}`);
  const initial = members.map((m, i) => `${names[i]}=http://${m.ip}:2380`).join(',');
  const out: EtcdMember[] = [];
  for (const [i, m] of members.entries()) {
    const clientURL = `${scheme}://${m.ip}:2379`;
    const tlsArgs = o.tls ? ['--cert-file', o.tls.cert, '--key-file', o.tls.key, '--trusted-ca-file', o.tls.ca, '--client-cert-auth'] : [];
    const argv = [
      '/usr/bin/etcd',
      '--name',
      names[i],
      '--data-dir',
      path.join(world.tmpDir(`etcd-${i}`), 'data'),
      '--listen-client-urls',
      clientURL,
      '--advertise-client-urls',
      clientURL,
      '--listen-peer-urls',
      `http://${m.ip}:2380`,
      '--initial-advertise-peer-urls',
      `http://${m.ip}:2380`,
      '--initial-cluster',
      initial,
      '--initial-cluster-state',
      'new',
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
      ...tlsArgs,
    ];
    out.push({ name: names[i], ns: m.ns, ip: m.ip, proc: background(world, m.ns, argv), clientURL, argv });
  }
  for (const m of out) {
    await waitFor(
      () => /ready to serve client requests|serving (insecure )?client requests/.test(m.proc.output()) || m.proc.proc.exitCode !== null,
      20_000,
      `etcd ${m.name} ready`,
    );
    if (m.proc.proc.exitCode !== null) throw new Error(`etcd ${m.name} exited: ${m.proc.output().slice(-2000)}`);
  }
  return out;
}

export interface TlsFiles {
  ca: string;
  /** the members' serving certificate (for every member address) */
  cert: string;
  key: string;
  /** a client certificate signed by the same CA */
  clientCert: string;
  clientKey: string;
}

/** A throwaway CA, a server certificate for `ips` and a client certificate, made with openssl in `dir`. */
export async function makeTls(dir: string, ips: string[]): Promise<TlsFiles> {
  const { run } = await import('../../pkg/exec');
  const f = (n: string) => path.join(dir, n);
  const ssl = (args: string[]) => run('openssl', args);
  await ssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=tscni-e2e-ca',
    '-keyout',
    f('ca-key.pem'),
    '-out',
    f('ca.pem'),
  ]);
  const leaf = async (name: string, ext: string) => {
    await ssl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}-key.pem`),
      '-out',
      f(`${name}.csr`),
    ]);
    await import('fs').then((fs) => fs.writeFileSync(f(`${name}.ext`), ext));
    await ssl([
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca-key.pem'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.pem`),
    ]);
  };
  await leaf('server', `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await leaf('client', 'extendedKeyUsage=clientAuth\n');
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server-key.pem'), clientCert: f('client.pem'), clientKey: f('client-key.pem') };
}
