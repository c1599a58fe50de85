// `tscni k8s install` (the DaemonSet's init container) with the shipped manifest's own templates, against a
// scripted fake API server: there is no Kubernetes API server here (see pkg/fabric/testdata/k8s/fake-api.ts).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseConfig } from '../ipam/host-local/config';
import { FakeApi, fixture, json } from '../pkg/fabric/testdata/k8s/fake-api';
import { configMapData, MANIFEST } from '../pkg/fabric/testdata/k8s/manifest';
import { fabricConfOf, fabricMain, loadFabricConf } from './fabric-cmd';

const loadFabricConfText = (text: string) => fabricConfOf(JSON.parse(text), 'rendered');
import { install, PLUGIN_LINKS, probe, render, templateVars, type InstallOptions } from './k8s-cmd';

const DATA = configMapData(MANIFEST);
const LIST = JSON.parse(fixture('nodelist.json'));
const SELF = 'tscni-e2e-worker2';
const withoutCIDR = LIST.items.find((i: { metadata: { name: string } }) => i.metadata.name === SELF);
const withCIDR = JSON.parse(fixture('watch-events.jsonl').split('\n')[0]).object;

describe('tscni k8s install with the manifest templates (fake API server, no cluster here)', () => {
  let dir: string;
  let api: FakeApi;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-k8s-'));
    fs.mkdirSync(path.join(dir, 'templates'));
    for (const [k, v] of Object.entries(DATA)) fs.writeFileSync(path.join(dir, 'templates', k), v);
  });
  afterEach(async () => {
    await api?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the ConfigMap has every mode, the kind podSubnet as its one clusterCIDR, the default mode, portmap chained', () => {
    expect(Object.keys(DATA).sort()).toEqual([
      'bgpASN',
      'clusterCIDR',
      'host-gw-bgp.conflist',
      'host-gw.conflist',
      'mode',
      'ptp-fabric.conf',
      'ptp.conflist',
      'vxlan.conflist',
    ]);
    expect(DATA.mode).toBe('host-gw');
    const kind = fs.readFileSync(path.join(__dirname, '..', 'e2e', 'kind', 'kind-config.yaml'), 'utf8');
    expect(DATA.clusterCIDR).toBe(/podSubnet: "?([\d./]+)"?/.exec(kind)![1]);
    // every pod CIDR of the Node (dual stack), with the cluster CIDR of its family
    for (const k of ['host-gw.conflist', 'host-gw-bgp.conflist', 'vxlan.conflist', 'ptp-fabric.conf']) {
      expect(DATA[k]).toContain('"clusterCIDR": "{{clusterCIDRs}}"');
      expect(DATA[k]).toContain('"podCIDR": "{{podCIDRs}}"');
    }
    expect(DATA['ptp.conflist']).toContain('"ranges": "{{podRanges}}"');
    for (const k of ['host-gw.conflist', 'host-gw-bgp.conflist', 'vxlan.conflist', 'ptp.conflist']) {
      const plugins = JSON.parse(DATA[k]).plugins;
      expect(plugins.map((p: { type: string }) => p.type)).toEqual([`tscni-${k.split('.')[0].replace('-bgp', '')}`, 'portmap']);
      expect(plugins[0].ipam.type).toBe('tscni-host-local');
    }
  });

  test('the manifest: Pod Security label, nodes/status patch, probes, arch selector, privileged init container, host IPAM and run dirs', () => {
    expect(MANIFEST).toMatch(/^ {4}pod-security\.kubernetes\.io\/enforce: privileged$/m);
    expect(MANIFEST).toMatch(/resources: \["nodes\/status"\]\n\s+verbs: \["patch"\]/);
    expect(MANIFEST).toMatch(/^ {8}kubernetes\.io\/arch: amd64$/m);
    expect(MANIFEST).toContain('command: ["/usr/local/bin/tscni", "k8s", "probe", "live", "--max-age", "600"]');
    expect(MANIFEST).toContain('command: ["/usr/local/bin/tscni", "k8s", "probe", "ready"]');
    const init = MANIFEST.slice(MANIFEST.indexOf('initContainers:'), MANIFEST.indexOf('      containers:'));
    expect(init).toMatch(/privileged: true/);
    for (const p of ['/var/lib/cni/networks', '/run/tscni']) expect(MANIFEST).toContain(`path: ${p}`);
    // the VTEP stays clear of flannel.1 (VNI 1, UDP 8472) while both run during a migration
    const vx = JSON.parse(DATA['vxlan.conflist']).plugins[0];
    expect([vx.vni, vx.port]).toEqual([4242, 4789]);
  });

  const opts = (mode: string): InstallOptions => ({
    mode,
    templates: path.join(dir, 'templates'),
    binDir: path.join(dir, 'opt/cni/bin'),
    conflist: path.join(dir, 'etc/cni/net.d/10-tscni.conflist'),
    fabricConf: path.join(dir, 'etc/cni/tscni-fabric.json'),
    node: SELF,
    clusterCIDR: '10.244.0.0/16',
    exe: path.join(dir, 'fake-exe'),
    waitSeconds: 10,
    pollMs: 10,
    log: () => undefined,
  });

  /** The templates point peersFile at the host's /etc/cni: move it into the temp dir. */
  function retarget(): void {
    for (const f of fs.readdirSync(path.join(dir, 'templates'))) {
      const p = path.join(dir, 'templates', f);
      fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace('/etc/cni/tscni-peers.json', path.join(dir, 'etc/cni/tscni-peers.json')));
    }
  }

  test.each(['host-gw', 'vxlan', 'ptp'])('%s: waits for the podCIDR, copies the executable and links, writes peers, fabric conf and conflist', async (mode) => {
    retarget();
    fs.writeFileSync(path.join(dir, 'fake-exe'), '#!/bin/sh\n');
    const logs: string[] = [];
    api = new FakeApi().script(json(JSON.stringify(withoutCIDR)), json(JSON.stringify(withCIDR)), json(JSON.stringify(LIST)));
    const r = await install({ ...opts(mode), log: (l) => logs.push(l) }, { server: await api.start(), token: () => 't' });
    expect(api.seen.map((s) => s.url)).toEqual([`/api/v1/nodes/${SELF}`, `/api/v1/nodes/${SELF}`, '/api/v1/nodes?resourceVersion=0']);
    expect(logs.some((l) => /has no podCIDR yet .*; waiting/.test(l))).toBe(true);
    expect(r).toEqual({ vars: expect.objectContaining({ podCIDR: '10.244.2.0/24', nodeIP: '172.18.0.4' }), peers: 2 });

    const bin = opts(mode).binDir;
    expect(fs.statSync(path.join(bin, 'tscni')).mode & 0o777).toBe(0o755);
    for (const p of PLUGIN_LINKS) expect(fs.readlinkSync(path.join(bin, p))).toBe('tscni');
    expect(fs.readdirSync(bin).filter((f) => f.startsWith('.'))).toEqual([]);

    const peers = JSON.parse(fs.readFileSync(path.join(dir, 'etc/cni/tscni-peers.json'), 'utf8')).peers;
    expect(peers).toEqual([
      { node: 'tscni-e2e-control-plane', nodeIP: '172.18.0.3', podCIDR: '10.244.0.0/24' },
      { node: 'tscni-e2e-worker', nodeIP: '172.18.0.2', podCIDR: '10.244.1.0/24' },
    ]);
    // what the watcher will read: a fabric conf the fabric code accepts, for this node
    const fabric = loadFabricConf(opts(mode).fabricConf);
    expect([fabric.mode.name, fabric.podCIDR, fabric.nodeIP, fabric.clusterCIDR]).toEqual([
      mode === 'ptp' ? 'host-gw' : mode,
      '10.244.2.0/24',
      '172.18.0.4',
      '10.244.0.0/16',
    ]);
    const conflist = JSON.parse(fs.readFileSync(opts(mode).conflist, 'utf8'));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual([`tscni-${mode}`, 'portmap']);
    expect(fs.readdirSync(path.dirname(opts(mode).conflist))).toEqual(['10-tscni.conflist']);
    if (mode === 'ptp') {
      // host-local accepts the range: the node's /24 inside the cluster's /16 (pod-to-pod is not masqueraded)
      const hl = parseConfig({ ...conflist, type: 'ptp', ipam: conflist.plugins[0].ipam, raw: conflist.plugins[0] });
      const r0 = hl.rangeSets[0].ranges[0];
      expect([r0.start, r0.end].map((x) => Number(x & 0xffn))).toEqual([1, 254]);
      expect(conflist.plugins[0].ipam.ranges[0][0]).toEqual({ subnet: '10.244.0.0/16', rangeStart: '10.244.2.1', rangeEnd: '10.244.2.254' });
    } else {
      expect(conflist.plugins[0].podCIDR).toEqual(['10.244.2.0/24']);
    }
  });

  test('a node that never gets a podCIDR: gives up after --wait with the reason, writes nothing', async () => {
    retarget();
    api = new FakeApi().script(...Array.from({ length: 50 }, () => json(JSON.stringify(withoutCIDR))));
    const o = { ...opts('host-gw'), binDir: '', waitSeconds: 0.05 };
    await expect(install(o, { server: await api.start() })).rejects.toThrow(/node tscni-e2e-worker2 has no podCIDR yet .*gave up after 0.05s/);
    expect(fs.existsSync(path.join(dir, 'etc'))).toBe(false);
  });

  test('template variables: IPv6 range ends at the last address; an unknown variable is named', () => {
    const v = templateVars({ name: 'n6', podCIDRs: ['fd00:10:244:1::/64'], internalIPs: ['172.18.0.2', 'fc00::2'] });
    expect(v).toEqual({
      nodeName: 'n6',
      nodeIP: 'fc00::2',
      podCIDR: 'fd00:10:244:1::/64',
      podCIDRs: ['fd00:10:244:1::/64'],
      podRangeStart: 'fd00:10:244:1::1',
      podRangeEnd: 'fd00:10:244:1:ffff:ffff:ffff:ffff',
      podRanges: [[{ subnet: 'fd00:10:244:1::/64', rangeStart: 'fd00:10:244:1::1', rangeEnd: 'fd00:10:244:1:ffff:ffff:ffff:ffff' }]],
    });
    expect(templateVars({ name: 'n', podCIDRs: ['10.1.2.0/24'], internalIPs: ['10.0.0.2'] }, '10.1.0.0/16').clusterCIDR).toBe('10.1.0.0/16');
    expect(() => render({ a: 'x{{podCIDRs}}' }, v, 't')).toThrow('t: {{podCIDRs}} is not text: give it a whole JSON string of its own ("{{podCIDRs}}")');
    // a number as a whole value: the BGP template's AS
    const bgp = render(
      JSON.parse(DATA['host-gw-bgp.conflist']),
      { ...templateVars({ name: 'n', podCIDRs: ['10.1.2.0/24'], internalIPs: ['10.0.0.2'] }, '10.1.0.0/16', 64512) },
      'b',
    );
    expect((bgp as { plugins: { bgp: unknown }[] }).plugins[0].bgp).toEqual({ asn: 64512 });
    expect(render({ a: ['x-{{ nodeName }}'], b: 3 }, v, 't')).toEqual({ a: ['x-n6'], b: 3 });
    expect(() => render({ a: '{{podCidr}}' }, v, 'host-gw.conflist')).toThrow(/host-gw.conflist: unknown template variable \{\{podCidr\}\}/);
  });

  test('a dual-stack Node: every pod CIDR and the cluster CIDR of its family, as lists, into the shipped templates', () => {
    const dual = { name: 'd', podCIDRs: ['10.244.3.0/24', 'fd00:10:244:3::/64'], internalIPs: ['172.18.0.5', 'fc00::5'] };
    const v = templateVars(dual, 'fd00:10:244::/56, 10.244.0.0/16');
    expect([v.nodeIP, v.clusterCIDR, v.clusterCIDRs]).toEqual(['172.18.0.5', '10.244.0.0/16', ['10.244.0.0/16', 'fd00:10:244::/56']]);
    const vx = (render(JSON.parse(DATA['vxlan.conflist']), v, 'vxlan.conflist') as { plugins: Record<string, unknown>[] }).plugins[0];
    expect([vx.podCIDR, vx.clusterCIDR]).toEqual([dual.podCIDRs, ['10.244.0.0/16', 'fd00:10:244::/56']]);
    const ptp = (render(JSON.parse(DATA['ptp.conflist']), v, 'ptp.conflist') as { plugins: { ipam: { ranges: unknown } }[] }).plugins[0];
    expect(ptp.ipam.ranges).toEqual([
      [{ subnet: '10.244.0.0/16', rangeStart: '10.244.3.1', rangeEnd: '10.244.3.254' }],
      [{ subnet: 'fd00:10:244::/56', rangeStart: 'fd00:10:244:3::1', rangeEnd: 'fd00:10:244:3:ffff:ffff:ffff:ffff' }],
    ]);
    // what the plugins then read
    const conf = loadFabricConfText(JSON.stringify(render(JSON.parse(DATA['vxlan.conflist']), { ...v, nodeIP: '172.18.0.5' }, 'x')));
    expect([conf.podCIDRs, conf.clusterCIDRs]).toEqual([dual.podCIDRs, ['10.244.0.0/16', 'fd00:10:244::/56']]);
  });

  test('a podCIDR other than the one the files in place were rendered for: the old range reservations are freed first', async () => {
    retarget();
    const ipam = path.join(dir, 'ipam');
    for (const f of ['host-gw.conflist']) {
      const p = path.join(dir, 'templates', f);
      fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace('"type": "tscni-host-local"', `"type": "tscni-host-local", "dataDir": "${ipam}"`));
    }
    // rendered before for 10.244.9.0/24 (a Node deleted and registered again); the bridge name is one no node has
    const o = { ...opts('host-gw'), binDir: '' };
    fs.mkdirSync(path.dirname(o.conflist), { recursive: true });
    const old = {
      cniVersion: '1.0.0',
      name: 'tscni',
      plugins: [{ type: 'tscni-host-gw', bridge: 'tscni-nobr0', ipam: { type: 'tscni-host-local', dataDir: ipam } }],
    };
    fs.writeFileSync(o.conflist, JSON.stringify(old));
    fs.writeFileSync(o.fabricConf, JSON.stringify({ ...old.plugins[0], podCIDR: '10.244.9.0/24', clusterCIDR: '10.244.0.0/16', peersFile: '/x/peers.json' }));
    fs.mkdirSync(path.join(ipam, 'tscni'), { recursive: true });
    for (const ip of ['10.244.9.2', '10.244.9.3', '10.244.2.7']) fs.writeFileSync(path.join(ipam, 'tscni', ip), `c-${ip}\neth0`);
    const logs: string[] = [];
    api = new FakeApi().script(json(JSON.stringify(withCIDR)), json(JSON.stringify(LIST)));
    const server = await api.start();
    await install({ ...o, log: (l) => logs.push(l) }, { server });
    expect(logs).toContain(`node ${SELF}: podCIDR changed from 10.244.9.0/24 to 10.244.2.0/24: giving the old one back`);
    expect(logs).toContain(`freed 2 reservation(s) of 10.244.9.0/24 in ${path.join(ipam, 'tscni')}`);
    expect(fs.readdirSync(path.join(ipam, 'tscni')).filter((f) => !f.startsWith('.') && !f.startsWith('last'))).toEqual(['10.244.2.7']);
    expect(JSON.parse(fs.readFileSync(o.conflist, 'utf8')).plugins[0].podCIDR).toEqual(['10.244.2.0/24']);
    // the same podCIDR again: nothing to give back
    logs.length = 0;
    api.script(json(JSON.stringify(withCIDR)), json(JSON.stringify(LIST)));
    await install({ ...o, log: (l) => logs.push(l) }, { server });
    expect(logs.filter((l) => /changed|freed/.test(l))).toEqual([]);
  });

  test('probe ready: the conflist parses; probe live: the agent listed or heard from the API within --max-age', () => {
    const conflist = path.join(dir, 'c.conflist');
    expect(probe('ready', { conflist, maxAgeSeconds: 1 })).toMatch(/ENOENT/);
    fs.writeFileSync(conflist, '{}');
    expect(probe('ready', { conflist, maxAgeSeconds: 1 })).toBeUndefined();
    const prev = process.env.TSCNI_RUN_DIR;
    process.env.TSCNI_RUN_DIR = dir;
    try {
      expect(probe('live', { conflist, maxAgeSeconds: 60 })).toMatch(/has not listed nodes yet/);
      fs.writeFileSync(path.join(dir, 'k8s-alive'), 'x');
      expect(probe('live', { conflist, maxAgeSeconds: 60 })).toBeUndefined();
      expect(probe('live', { conflist, maxAgeSeconds: 60 }, Date.now() + 120_000)).toMatch(/last good list or watch event 12\ds ago \(more than 60s\)/);
    } finally {
      if (prev === undefined) delete process.env.TSCNI_RUN_DIR;
      else process.env.TSCNI_RUN_DIR = prev;
    }
  });

  test('fabric watch --kubernetes refuses a conf without peersFile (peers only in memory would be undone by the next ADD)', async () => {
    const f = path.join(dir, 'nopeers.conflist');
    fs.writeFileSync(f, JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'host-gw', podCIDR: '10.244.1.0/24' }] }));
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await fabricMain(['watch', '--kubernetes', '--conf', f])).toBe(1);
      expect(String(err.mock.calls[0][0])).toMatch(/--kubernetes: .* has no peersFile/);
      expect(await fabricMain(['sync', '--kubernetes', '--conf', f])).toBe(2);
    } finally {
      err.mockRestore();
    }
  });
});
