// tscni under containerd 1.6: `ctr run --cni` with our conflist first in /etc/cni/net.d and our executables in
// /opt/cni/bin, as a user installs them; a private daemon inside a test node (e2e/lib/containerd.ts), an
// image built offline from busybox-static. ctr itself is the CNI client (go-cni/libcni): ADD before the task
// starts with CNI_NETNS=/proc/<pid>/ns/net, DEL after a foreground task ends with an empty CNI_NETNS.
import * as fs from 'fs';
import * as path from 'path';
import type { RunResult } from '../pkg/exec';
import { contains, parseCIDR, parseIP } from '../pkg/ipnet';
import { pluginBinDir } from './lib/bins';
import { busyboxMissing, busyboxOciArchive } from './lib/busybox';
import { Containerd, containerdMissing } from './lib/containerd';
import { REPO_ROOT, World, type Netns } from './lib/world';

const missing = containerdMissing() ?? busyboxMissing();
if (missing) console.log(`containerd e2e skipped: ${missing}`);
const describeCtr = missing ? describe.skip : describe;

const world = new World();
// two daemons to stop, their cgroups to remove: more than jest's default 5 s on a loaded machine
afterAll(() => world.cleanup(), 30_000);
const IMAGE = 'docker.io/tscni/busybox:e2e';
let archive: Promise<string> | undefined;
const imageArchive = () => (archive ??= busyboxOciArchive(world.tmpDir('image'), IMAGE));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeCtr.each([
  { plugin: 'bridge', file: '10-tscni-bridge.conflist' },
  { plugin: 'ptp', file: '30-tscni-ptp.conflist' },
])('ctr run --cni with the shipped $plugin conflist', ({ plugin, file }) => {
  let ctrd: Containerd;
  let node: Netns;
  let dataDir: string;
  let net: string;
  let subnet4: string;
  let logFile: string;
  let a: { run: Promise<RunResult>; ips: string[] };
  let b: { out: RunResult; ips: string[] };

  /** Addresses host-local holds for a ctr container: files in <dataDir>/<net> naming its CNI container ID. */
  function ipsOf(id: string): string[] {
    const dir = path.join(dataDir, net);
    const want = ctrd.cniContainerId(id);
    let files: string[] = [];
    try {
      files = fs.readdirSync(dir).filter((f) => parseIP(f) !== undefined);
    } catch {
      return [];
    }
    return files.filter((f) => fs.readFileSync(path.join(dir, f), 'utf8').split(/\r?\n/)[0] === want);
  }
  /** Our plugin's log lines (the conflist's `log` block) for a ctr container: verb and fields. */
  function calls(id: string): { verb: string; f: Record<string, string> }[] {
    const want = ctrd.cniContainerId(id);
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    return text
      .split('\n')
      .map((l) => /^\S+ (\S+) (\S+) (.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => !!m && m[1] === plugin)
      .map((m) => ({ verb: m[2], f: Object.fromEntries([...m[3].matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map((x) => [x[1], x[2]])) }))
      .filter((c) => c.f.id === want);
  }
  const v4 = (ips: string[]) => ips.find((ip) => !ip.includes(':'))!;
  const veths = async () => (await world.ipJson<{ ifname: string }[]>(node, ['link', 'show', 'type', 'veth'])).map((l) => l.ifname);
  const nftTable = async () => (await node.exec(['nft', 'list', 'table', 'inet', 'tscni'], { allowFailure: true })).stdout;

  /** A container's addresses once ADD is done and its task runs; fails early when its ctr run already ended. */
  async function started(id: string, runP?: Promise<RunResult>): Promise<string[]> {
    let ended: RunResult | undefined;
    runP?.then(
      (r) => (ended = r),
      (e: Error) => (ended = { exitCode: -1, stdout: '', stderr: e.message }),
    );
    return waitFor(`${id} to get an address and run`, async () => {
      if (ended) throw new Error(`ctr run ${id} ended: exit ${ended.exitCode} ${ended.stderr.trim()}\n${ctrd.logTail(5)}`);
      const ips = ipsOf(id);
      if (!ips.length) return undefined;
      const tasks = (await ctrd.ctr(['tasks', 'ls'])).stdout;
      return new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, 'm').test(tasks) ? ips : undefined;
    });
  }

  beforeAll(async () => {
    node = await world.node(`${plugin}-node`);
    dataDir = world.tmpDir(`ipam-${plugin}`);
    const conflist = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'conf', file), 'utf8'));
    conflist.plugins[0].ipam.dataDir = dataDir;
    logFile = path.join(dataDir, 'tscni.log');
    conflist.plugins[0].log = { file: logFile, level: 'info' };
    net = conflist.name;
    subnet4 = conflist.plugins[0].ipam.ranges[0][0].subnet;
    ctrd = await Containerd.start(world, { node, binDir: await pluginBinDir(plugin), label: plugin });
    ctrd.writeConflist(file, conflist);
    // ctr takes the first file only: were it to read this one, every ADD would fail
    ctrd.writeConflist('99-decoy.conflist', { cniVersion: '1.0.0', name: 'decoy', plugins: [{ type: 'tscni-no-such-plugin' }] });
    await ctrd.importImage(await imageArchive());
  }, 60_000);

  it('A (ctr run --rm --cni, held in the foreground by the test) gets an address from our host-local', async () => {
    const run = ctrd.ctr(['run', '--rm', '--cni', IMAGE, 'a', 'sh', '-c', 'echo tscni-page-a > /www/index.html && exec httpd -f -p 80 -h /www'], {
      allowFailure: true,
      timeout: 90_000,
    });
    a = { run, ips: await started('a', run) };
    expect(a.ips.length).toBe(plugin === 'ptp' ? 2 : 1);
    const ip = parseIP(v4(a.ips))!;
    expect(contains(parseCIDR(subnet4)!, ip.family, ip.ip)).toBe(true);
    expect(await veths()).toHaveLength(1);
    expect(await nftTable()).toContain(v4(a.ips));
  }, 30_000);

  it("B gets its own address, pings A and fetches A's page; A pings B", async () => {
    const aIp = v4(a.ips);
    const run = ctrd.ctr(
      ['run', '--rm', '--cni', IMAGE, 'b', 'sh', '-c', `ip -o -4 addr show eth0; ping -c 1 -W 2 ${aIp} && wget -q -O - http://${aIp}/ && sleep 2`],
      {
        allowFailure: true,
        timeout: 60_000,
      },
    );
    const ips = await started('b', run);
    const bIp = v4(ips);
    expect(bIp).not.toBe(aIp);
    const back = await ctrd.ctr(['tasks', 'exec', '--exec-id', 'ping-b', 'a', 'ping', '-c', '1', '-W', '2', bIp], { allowFailure: true });
    expect(back.stdout).toContain('1 packets received');
    b = { out: await run, ips };
    expect(b.out.stderr).toBe('');
    expect(b.out.stdout).toContain(`inet ${bIp}/`);
    expect(b.out.stdout).toContain('1 packets received');
    expect(b.out.stdout).toContain('tscni-page-a');
    expect(b.out.exitCode).toBe(0);
  }, 60_000);

  it("B ended: ctr's DEL (empty CNI_NETNS) released its address, veth, masquerade element and cached result", async () => {
    expect(ipsOf('b')).toEqual([]);
    expect(await veths()).toHaveLength(1);
    const table = await nftTable();
    expect(table).toContain(v4(a.ips));
    for (const ip of b.ips) expect(table).not.toContain(ip);
    expect(fs.readdirSync(path.join(ctrd.cacheDir, 'results')).filter((f) => f.includes(ctrd.cniContainerId('b')))).toEqual([]);
    // what ctr sent, from our log: ADD with the task's /proc netns, DEL with none
    const log = calls('b');
    expect(log.map((c) => c.verb)).toEqual(['ADD', 'DEL']);
    expect(log[0].f).toMatchObject({ netns: expect.stringMatching(/^\/proc\/\d+\/ns\/net$/), if: 'eth0', result: 'ok' });
    expect(log[1].f.netns).toBeUndefined();
    expect(log[1].f).toMatchObject({ if: 'eth0', result: 'ok' });
    console.log(`${plugin} under ctr: ADD ${log[0].f.ms} ms, DEL ${log[1].f.ms} ms`);
  });

  it("killing A ends its ctr run, whose DEL releases A's address, veth and masquerade element", async () => {
    await ctrd.ctr(['tasks', 'kill', '-s', 'KILL', 'a']);
    const r = await a.run;
    expect(r.exitCode).toBe(137);
    expect(r.stderr).not.toContain('network'); // ctr logs "network review" when DEL fails
    expect(ipsOf('a')).toEqual([]);
    expect(await veths()).toEqual([]);
    const table = await nftTable();
    for (const ip of a.ips) expect(table).not.toContain(ip);
    if (plugin === 'bridge') expect((await world.ipJson(node, ['link', 'show', 'cni0'])).length).toBe(1);
  }, 30_000);

  it('a detached container (ctr run -d --cni) gets an address; ctr never DELs it, a DEL by hand (no netns, no prevResult) releases it', async () => {
    await ctrd.ctr(['run', '-d', '--cni', IMAGE, 'c', 'sleep', '600']);
    const ips = await started('c');
    await ctrd.ctr(['tasks', 'kill', '-s', 'KILL', 'c']);
    await waitFor('c to stop', async () => ((await ctrd.ctr(['tasks', 'ls'])).stdout.match(/^c\s+\d+\s+STOPPED/m) ? true : undefined));
    await ctrd.ctr(['tasks', 'rm', 'c']);
    await ctrd.ctr(['containers', 'rm', 'c']);
    // the netns died with the task and took the veth with it; the address and the rule stay
    expect(ipsOf('c').sort()).toEqual([...ips].sort());
    expect(await nftTable()).toContain(v4(ips));
    const conflist = JSON.parse(fs.readFileSync(path.join(ctrd.netDir, file), 'utf8'));
    // libcni's cached result stays too; the DEL by hand goes without it (prevResult), as a user would type it
    expect(fs.existsSync(path.join(ctrd.cacheDir, 'results', `${net}-${ctrd.cniContainerId('c')}-eth0`))).toBe(true);
    const del = await world.cni(node, {
      command: 'DEL',
      containerId: ctrd.cniContainerId('c'),
      netns: '',
      config: { cniVersion: conflist.cniVersion, name: net, ...conflist.plugins[0] },
      binDir: await pluginBinDir(plugin),
    });
    expect(del.stderr).toBe('');
    expect(del.exitCode).toBe(0);
    expect(ipsOf('c')).toEqual([]);
    const table = await nftTable();
    for (const ip of ips) expect(table).not.toContain(ip);
  }, 30_000);
});
