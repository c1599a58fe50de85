// The Node-API peer source. There is no Kubernetes API server here to record from: parsing is tested on responses
// written by hand in the API's shapes (testdata/k8s: a kind-like NodeList with made-up UIDs and one dual-stack
// node, watch events, a 410 Gone), and the list+watch loop against a scripted fake server in this process
// (testdata/k8s/fake-api.ts), over HTTP and over HTTPS with the service-account CA.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parsePeersFile } from './config';
import {
  applyWatchEvent,
  clusterPeers,
  getJSON,
  inClusterConfig,
  listNodes,
  markNetworkAvailable,
  nodesToPeers,
  parseNode,
  peersFileText,
  selfDrift,
  watchNodes,
  type ApiConfig,
  type KubeNode,
} from './k8s';
import { FakeApi, fixture, json, stream } from './testdata/k8s/fake-api';

const LIST = fixture('nodelist.json');
const EVENTS = fixture('watch-events.jsonl');
const GONE = fixture('watch-gone.jsonl');
const CP = 'tscni-e2e-control-plane';
// lists are served from the API server's watch cache
const LIST_URL = '/api/v1/nodes?resourceVersion=0';

const nodesOf = (text: string) => new Map((JSON.parse(text).items as unknown[]).map((i) => parseNode(i)!).map((n) => [n.name, n]));
const brief = (nodes: Map<string, KubeNode>, self = CP) =>
  nodesToPeers(nodes.values(), self, 4, 4).peers.map((p) => `${p.key.slice(5)}=${p.podCIDR}@${p.nodeIP}`);

describe('parsing Node objects', () => {
  test('a NodeList: dual-stack podCIDRs, a node without podCIDR yet, InternalIPs only', () => {
    const nodes = nodesOf(LIST);
    expect(nodes.get(CP)).toEqual({ name: CP, podCIDRs: ['10.244.0.0/24'], internalIPs: ['172.18.0.3'] });
    expect(nodes.get('tscni-e2e-worker')).toEqual({
      name: 'tscni-e2e-worker',
      podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      internalIPs: ['172.18.0.2', 'fc00:f853:ccd:e793::2'],
    });
    expect(nodes.get('tscni-e2e-worker2')).toEqual({ name: 'tscni-e2e-worker2', podCIDRs: [], internalIPs: ['172.18.0.4'] });
  });

  test('spec.podCIDR alone (clusters before podCIDRs) and host bits cleared; no name is no node', () => {
    expect(parseNode({ metadata: { name: 'n' }, spec: { podCIDR: '10.9.3.7/24' } })).toEqual({ name: 'n', podCIDRs: ['10.9.3.0/24'], internalIPs: [] });
    expect(parseNode({ metadata: {}, spec: { podCIDR: '10.9.3.0/24' } })).toBeUndefined();
    expect(parseNode('nope')).toBeUndefined();
  });

  test("this node's own entry against its rendered conf: a new podCIDR or InternalIP asks for a new render", () => {
    const nodes = nodesOf(LIST);
    expect(selfDrift(nodes, CP, { podCIDR: '10.244.0.0/24', nodeIP: '172.18.0.3' })).toEqual({});
    expect(selfDrift(nodes, CP, { podCIDR: '10.244.7.0/24', nodeIP: '172.18.0.3' })).toEqual({
      rerender: `node ${CP} has podCIDR 10.244.0.0/24 but the conf says 10.244.7.0/24`,
    });
    expect(selfDrift(nodes, CP, { podCIDR: '10.244.0.0/24', nodeIP: '172.18.0.9' })).toEqual({
      rerender: `node ${CP} has InternalIP 172.18.0.3 but the conf says 172.18.0.9`,
    });
    // nothing a new render could fix: only a warning
    expect(selfDrift(nodes, 'tscni-e2e-worker2', { podCIDR: '10.244.2.0/24' })).toEqual({ warning: 'node tscni-e2e-worker2 has no podCIDR yet' });
    expect(selfDrift(nodes, 'gone', { podCIDR: '10.244.2.0/24' })).toEqual({ warning: 'node gone is not in the node list' });
  });

  test('peers: self skipped by name, a node without podCIDR skipped with a reason, sorted by name', () => {
    const r = nodesToPeers(nodesOf(LIST).values(), 'tscni-e2e-worker', 4, 4);
    expect(r.peers).toEqual([{ nodeIP: '172.18.0.3', podCIDR: '10.244.0.0/24', key: `node ${CP}` }]);
    expect(r.skipped).toEqual(['node tscni-e2e-worker2 has no podCIDR yet: skipped']);
  });

  test('IPv6 pod network: the IPv6 podCIDR and InternalIP of dual-stack nodes; single-stack ones say why not', () => {
    const r = nodesToPeers(nodesOf(LIST).values(), 'nobody', 6, 6);
    expect(r.peers).toEqual([{ nodeIP: 'fc00:f853:ccd:e793::2', podCIDR: 'fd00:10:244:1::/64', key: 'node tscni-e2e-worker' }]);
    expect(r.skipped).toEqual([`node ${CP} has no IPv6 podCIDR (10.244.0.0/24): skipped`, 'node tscni-e2e-worker2 has no podCIDR yet: skipped']);
    // IPv6 pods over an IPv4 underlay (vxlan): the IPv4 InternalIP
    expect(nodesToPeers(nodesOf(LIST).values(), 'nobody', 6, 4).peers[0].nodeIP).toBe('172.18.0.2');
  });

  test('watch events: MODIFIED gives worker2 its podCIDR, ADDED a node, BOOKMARK only moves the version, DELETED removes', () => {
    const nodes = nodesOf(LIST);
    const seen: string[][] = [];
    const rvs: (string | undefined)[] = [];
    for (const line of EVENTS.split('\n').filter(Boolean)) {
      const r = applyWatchEvent(nodes, JSON.parse(line));
      if (r === 'gone') throw new Error('unexpected 410');
      rvs.push(r.rv);
      if (r.changed) seen.push(brief(nodes));
    }
    expect(rvs).toEqual(['1051', '1060', '1075', '1080']);
    expect(seen).toEqual([
      ['tscni-e2e-worker=10.244.1.0/24@172.18.0.2', 'tscni-e2e-worker2=10.244.2.0/24@172.18.0.4'],
      ['tscni-e2e-worker=10.244.1.0/24@172.18.0.2', 'tscni-e2e-worker2=10.244.2.0/24@172.18.0.4', 'tscni-e2e-worker3=10.244.3.0/24@172.18.0.5'],
      ['tscni-e2e-worker2=10.244.2.0/24@172.18.0.4', 'tscni-e2e-worker3=10.244.3.0/24@172.18.0.5'],
    ]);
  });

  test('ERROR events: 410 Gone asks for a new list, any other is an error with its message', () => {
    expect(applyWatchEvent(new Map(), JSON.parse(GONE))).toBe('gone');
    expect(() => applyWatchEvent(new Map(), { type: 'ERROR', object: { kind: 'Status', code: 500, message: 'etcd is sad' } })).toThrow(/ERROR 500 etcd is sad/);
    expect(() => applyWatchEvent(new Map(), { object: {} })).toThrow(/malformed event/);
  });

  test('dual stack: a peer entry per pod family; the address is the underlay one for a tunnel, of the pod family for host-gw', () => {
    const nodes = nodesOf(LIST);
    const conf = { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24', 'fd00:10:244::/64'], nodeIP: '172.18.0.3' };
    const brief6 = (r: { peers: { key: string; podCIDR: string; nodeIP: string }[]; skipped: string[] }) => [
      ...r.peers.map((p) => `${p.key.slice(5)}=${p.podCIDR}@${p.nodeIP}`),
      ...r.skipped,
    ];
    expect(brief6(clusterPeers(nodes, CP, { ...conf, mode: {} }))).toEqual([
      'tscni-e2e-worker=10.244.1.0/24@172.18.0.2',
      'tscni-e2e-worker=fd00:10:244:1::/64@172.18.0.2',
      'node tscni-e2e-worker2 has no podCIDR yet: skipped',
      'node tscni-e2e-worker2 has no podCIDR yet: skipped',
    ]);
    expect(brief6(clusterPeers(nodes, CP, { ...conf, mode: { nextHopInPodFamily: true } })).slice(0, 2)).toEqual([
      'tscni-e2e-worker=10.244.1.0/24@172.18.0.2',
      'tscni-e2e-worker=fd00:10:244:1::/64@fc00:f853:ccd:e793::2',
    ]);
    // a conf of both families: each must match the Node
    expect(selfDrift(nodes, 'tscni-e2e-worker', { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:9::/64'], nodeIP: '172.18.0.2' })).toEqual(
      {
        rerender: 'node tscni-e2e-worker has podCIDR fd00:10:244:1::/64 but the conf says fd00:10:244:9::/64',
      },
    );
    expect(selfDrift(nodes, 'tscni-e2e-worker', { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'], nodeIP: '172.18.0.2' })).toEqual(
      {},
    );
  });

  test('the peers file written from the Node API reads back through the plugin’s own peersFile parser', () => {
    const { peers } = nodesToPeers(nodesOf(LIST).values(), 'tscni-e2e-worker2', 4, 4);
    const text = peersFileText(peers);
    const back = parsePeersFile(text, '/etc/cni/tscni-peers.json', { nodeIP: '172.18.0.4', podCIDR: '10.244.2.0/24' });
    expect(back.map((p) => [p.nodeIP, p.podCIDR])).toEqual(peers.map((p) => [p.nodeIP, p.podCIDR]));
    expect(JSON.parse(text).peers[0].node).toBe(CP);
  });
});

describe('list + watch against a fake API server (no API server here)', () => {
  let api: FakeApi;
  afterEach(() => api.stop());

  test('the backoff starts over only after a productive watch, not after a list that succeeds', async () => {
    api = new FakeApi().script(
      json(LIST),
      stream('', 'drop'), // list fine, watch dropped at once: 10 ms
      json(LIST),
      stream('', 'drop'), // again: 20 ms, not 10
      json(LIST),
      stream(EVENTS.split('\n')[0], 'drop'), // an event came: productive; dropped after it: back to 10 ms
      json(LIST),
    );
    const cfg: ApiConfig = { server: await api.start() };
    const ac = new AbortController();
    const logs: string[] = [];
    let alive = 0;
    let lists = 0;
    await watchNodes(
      cfg,
      () => {
        if (api.seen.at(-1)!.url === LIST_URL && ++lists === 4) ac.abort();
      },
      { signal: ac.signal, log: (l) => logs.push(l), backoffMs: { min: 10, max: 1000 }, random: () => 1, onAlive: () => alive++ },
    );
    expect(logs.map((l) => /in ([\d.]+)s$/.exec(l)![1])).toEqual(['0.01', '0.02', '0.01']);
    // four lists and one event
    expect(alive).toBe(5);
  });

  test('each backoff wait is jittered between half and all of the delay', async () => {
    const forbidden = JSON.stringify({ kind: 'Status', code: 403, message: 'no' });
    api = new FakeApi().script(json(forbidden, 403), json(forbidden, 403), json(LIST));
    const cfg: ApiConfig = { server: await api.start() };
    const ac = new AbortController();
    const logs: string[] = [];
    await watchNodes(cfg, () => ac.abort(), { signal: ac.signal, log: (l) => logs.push(l), backoffMs: { min: 40, max: 1000 }, random: () => 0 });
    expect(logs.map((l) => /in ([\d.]+)s$/.exec(l)![1])).toEqual(['0.02', '0.04']);
  });

  test('NetworkUnavailable=False is a strategic-merge PATCH of nodes/<name>/status', async () => {
    api = new FakeApi().script(json('{"kind":"Node"}'));
    const cfg: ApiConfig = { server: await api.start(), token: () => 't' };
    await markNetworkAvailable(cfg, 'worker 2', new Date('2026-12-03T10:00:00.123Z'));
    expect(api.seen[0]).toMatchObject({ method: 'PATCH', url: '/api/v1/nodes/worker%202/status', contentType: 'application/strategic-merge-patch+json' });
    expect(JSON.parse(api.seen[0].body)).toEqual({
      status: {
        conditions: [
          {
            type: 'NetworkUnavailable',
            status: 'False',
            reason: 'TscniIsUp',
            message: 'tscni programmed the pod network of this node',
            lastTransitionTime: '2026-12-03T10:00:00Z',
            lastHeartbeatTime: '2026-12-03T10:00:00Z',
          },
        ],
      },
    });
    api.script(json(JSON.stringify({ kind: 'Status', code: 403, message: 'nodes "w" is forbidden: cannot patch resource "nodes/status"' }), 403));
    await expect(markNetworkAvailable(cfg, 'w')).rejects.toThrow('PATCH /api/v1/nodes/w/status: 403 nodes "w" is forbidden');
  });

  test.each([
    ['that never answers', () => undefined],
    [
      'that sends headers and part of a body, then nothing',
      (_req: unknown, res: { writeHead(s: number): void; write(s: string): void }) => {
        res.writeHead(200);
        res.write('{"items": [');
      },
    ],
  ])('a request to a server %s ends at its deadline, naming the path', async (_what, step) => {
    api = new FakeApi().script(step as never);
    const cfg: ApiConfig = { server: await api.start() };
    const t0 = Date.now();
    await expect(getJSON(cfg, '/api/v1/nodes', undefined, 300)).rejects.toThrow('GET /api/v1/nodes: no answer within 0.3 s');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  test('list, watch, resume after a normal end, re-list on 410 Gone and after a dropped connection', async () => {
    api = new FakeApi().script(
      json(LIST), // 1 list
      stream(EVENTS, 'end'), // 2 watch from the list's version; the server ends it (timeoutSeconds)
      stream(GONE, 'hang'), // 3 resumed from the last event's version: history compacted
      json(LIST), // 4 list again at once
      stream('', 'drop'), // 5 watch: connection dropped
      json(LIST), // 6 list again after the backoff
    );
    const cfg: ApiConfig = { server: await api.start(), token: () => 'tok-1' };
    const ac = new AbortController();
    const snaps: string[][] = [];
    const logs: string[] = [];
    let lists = 0;
    await watchNodes(
      cfg,
      (nodes) => {
        snaps.push(brief(nodes));
        if (api.seen.at(-1)!.url === LIST_URL && ++lists === 3) ac.abort();
      },
      { signal: ac.signal, log: (l) => logs.push(l), watchSeconds: 7, backoffMs: { min: 20, max: 40 }, random: () => 1 },
    );
    expect(api.seen.map((s) => s.url)).toEqual([
      LIST_URL,
      '/api/v1/nodes?watch=1&allowWatchBookmarks=true&timeoutSeconds=7&resourceVersion=1042',
      '/api/v1/nodes?watch=1&allowWatchBookmarks=true&timeoutSeconds=7&resourceVersion=1080',
      LIST_URL,
      '/api/v1/nodes?watch=1&allowWatchBookmarks=true&timeoutSeconds=7&resourceVersion=1042',
      LIST_URL,
    ]);
    expect(api.seen.every((s) => s.auth === 'Bearer tok-1')).toBe(true);
    const first = ['tscni-e2e-worker=10.244.1.0/24@172.18.0.2'];
    expect(snaps).toEqual([
      first,
      [...first, 'tscni-e2e-worker2=10.244.2.0/24@172.18.0.4'],
      [...first, 'tscni-e2e-worker2=10.244.2.0/24@172.18.0.4', 'tscni-e2e-worker3=10.244.3.0/24@172.18.0.5'],
      ['tscni-e2e-worker2=10.244.2.0/24@172.18.0.4', 'tscni-e2e-worker3=10.244.3.0/24@172.18.0.5'],
      first,
      first,
    ]);
    expect(logs[0]).toMatch(/410 Gone/);
    expect(logs[1]).toMatch(/node watch failed: .*listing again in 0.02s/);
  });

  test('a refused list (403 from RBAC) backs off, doubling, and says the API’s message', async () => {
    const forbidden = JSON.stringify({
      kind: 'Status',
      code: 403,
      message: 'nodes is forbidden: User "system:serviceaccount:kube-system:tscni" cannot list resource "nodes"',
    });
    api = new FakeApi().script(json(forbidden, 403), json(forbidden, 403), json(LIST));
    const cfg: ApiConfig = { server: await api.start() };
    const ac = new AbortController();
    const logs: string[] = [];
    await watchNodes(cfg, () => ac.abort(), { signal: ac.signal, log: (l) => logs.push(l), backoffMs: { min: 10, max: 1000 }, random: () => 1 });
    expect(logs).toEqual([
      expect.stringMatching(/node list failed: GET \/api\/v1\/nodes\?resourceVersion=0: 403 nodes is forbidden: .*; listing again in 0.01s$/),
      expect.stringMatching(/; listing again in 0.02s$/),
    ]);
    expect(api.seen[0].auth).toBeUndefined();
  });

  test('in-cluster config over HTTPS: the service account CA is trusted, the token re-read per request, other CAs refused', async () => {
    api = new FakeApi(true).script(json(LIST), json(LIST));
    const url = new URL(await api.start());
    const sa = fs.mkdtempSync(path.join(os.tmpdir(), 'tscni-sa-'));
    try {
      fs.copyFileSync(path.join(__dirname, 'testdata/k8s/apiserver.crt'), path.join(sa, 'ca.crt'));
      fs.writeFileSync(path.join(sa, 'token'), 'token-a\n');
      const cfg = inClusterConfig({ KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }, sa);
      expect(cfg.server).toBe(`https://127.0.0.1:${url.port}`);
      expect((await listNodes(cfg)).resourceVersion).toBe('1042');
      fs.writeFileSync(path.join(sa, 'token'), 'token-b\n'); // the kubelet rotates projected tokens
      expect((await listNodes(cfg)).nodes.size).toBe(3);
      expect(api.seen.map((s) => s.auth)).toEqual(['Bearer token-a', 'Bearer token-b']);
      // without the cluster's CA the self-signed server is not trusted
      await expect(listNodes({ ...cfg, ca: undefined })).rejects.toThrow(/self-signed|certificate/);
      expect(inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00:10:96::1' }, sa).server).toBe('https://[fd00:10:96::1]:443');
    } finally {
      fs.rmSync(sa, { recursive: true, force: true });
    }
    expect(() => inClusterConfig({}, sa)).toThrow(/KUBERNETES_SERVICE_HOST is not set/);
    expect(() => inClusterConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }, sa)).toThrow(/cannot read the service account's CA/);
  });
});
