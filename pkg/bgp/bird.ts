// BIRD 2, as tscni's BGP speaker: the config it runs on (rendered from the node and its neighbours, pure) and its
// control socket, spoken in-process (the text protocol birdc speaks: a greeting, then per command lines
// `NNNN-text`, continuations ` text`, and a last `NNNN text`), so CHECK and the doctor spawn nothing.

export interface BirdPlan {
  routerId: string;
  asn: number;
  /** this node's address on the underlay: the sessions' source */
  nodeIP: string;
  underlayDev: string;
  /** announced (IPv4) */
  podCIDR: string;
  /** what may be learned: pod CIDRs inside it, never our own */
  clusterCIDR: string;
  neighbors: Array<{ address: string; asn: number; key: string; direct: boolean }>;
  holdTime?: number;
  restartTime: number;
}

/** BIRD names protocols with identifiers: `n_192_168_50_254` for a neighbour's session. */
export const sessionName = (address: string): string => `n_${address.replace(/[^0-9a-fA-F]/g, '_')}`;

export const KERNEL_PROTOCOL = 'tscni_kernel';
export const PODS_PROTOCOL = 'tscni_pods';

export function renderBirdConf(p: BirdPlan): string {
  const hold = p.holdTime ? `    hold time ${p.holdTime};\n    keepalive time ${Math.max(1, Math.floor(p.holdTime / 3))};\n` : '';
  const sessions = p.neighbors.map(
    (n) => `
# ${n.key}
protocol bgp ${sessionName(n.address)} {
    local ${p.nodeIP} as ${p.asn};
    neighbor ${n.address} as ${n.asn};
    ${n.direct ? 'direct' : 'multihop'};
${hold}    start delay time 1;
    connect retry time 2;
    graceful restart on;
    graceful restart time ${p.restartTime};
    error wait time 1, 10;
    ipv4 {
        import filter tscni_learn;
        export where proto = "${PODS_PROTOCOL}";
        next hop self;
    };
}
`,
  );
  return `# tscni bgp run: this node's BIRD. Rewritten on every change of the node or its neighbours: edits are lost.
router id ${p.routerId};
log stderr { info, remote, warning, error, auth, fatal, bug };
# started with -R: after a crash, the kernel routes of the last BIRD stay until the sessions are back
graceful restart wait ${p.restartTime};

protocol device {
    scan time 10;
}

# connected subnets of the underlay: next hops of multihop sessions resolve through them
protocol direct tscni_underlay {
    ipv4;
    interface "${p.underlayDev}";
}

# this node's pod CIDR, announced to every neighbour (the kernel routes it to the bridge already)
protocol static ${PODS_PROTOCOL} {
    ipv4;
    route ${p.podCIDR} blackhole;
}

# other nodes' pod CIDRs inside the cluster's, never our own nor anything else
filter tscni_learn {
    if net ~ [ ${p.clusterCIDR}+ ] && net != ${p.podCIDR} then accept;
    reject;
}

# what BGP learned goes into the main table with BIRD's protocol (ip route show proto bird); persist and graceful
# restart: the routes stay while BIRD is down and until a new one has learned them again, so pods keep talking
protocol kernel ${KERNEL_PROTOCOL} {
    ipv4 {
        import none;
        export where source = RTS_BGP;
    };
    persist;
    graceful restart;
    scan time 10;
}
${sessions.join('')}`;
}

export interface BirdLine {
  code: number;
  text: string;
}

/** One command on BIRD's control socket; rejects when BIRD is not there, answers an error code, or is silent. */
export function birdCommand(socket: string, command: string, timeoutMs = 5000): Promise<BirdLine[]> {
  return new Promise((resolve, reject) => {
    const s = (require('net') as typeof import('net')).connect(socket);
    const lines: BirdLine[] = [];
    let buf = '';
    let greeted = false;
    let code = 0;
    const done = (e?: Error) => {
      clearTimeout(t);
      s.destroy();
      if (e) reject(e);
      else resolve(lines);
    };
    const t = setTimeout(() => done(new Error(`BIRD at ${socket}: no answer to "${command}" within ${timeoutMs / 1000} s`)), timeoutMs);
    s.on('error', (e: NodeJS.ErrnoException) =>
      done(new Error(`BIRD at ${socket}: ${e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'not running' : e.message} (${e.code})`)),
    );
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^(\d{4})([ -])(.*)$/.exec(l);
        if (!greeted) {
          // 0001 BIRD 2.0.12 ready.
          greeted = true;
          s.write(`${command}\n`);
          continue;
        }
        if (m) code = Number(m[1]);
        const text = m ? m[3] : l.slice(1);
        if (m && m[2] === ' ') {
          if (code >= 8000) return done(new Error(`BIRD at ${socket}: "${command}": ${text.trim() || `error ${code}`}`));
          if (code !== 0) lines.push({ code, text });
          return done();
        }
        lines.push({ code, text });
      }
    });
  });
}

export interface BirdProtocol {
  name: string;
  proto: string;
  state: string;
  /** for BGP: Established, Active, Connect, ... with BIRD's reason */
  info: string;
}

/** `show protocols` rows. */
export function parseProtocols(lines: BirdLine[]): BirdProtocol[] {
  return lines
    .filter((l) => l.code === 1002)
    .flatMap((l) => {
      const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+(?:\s\d\d:\d\d:\d\d\S*)?)\s*(.*)$/.exec(l.text.trim());
      return m ? [{ name: m[1], proto: m[2], state: m[4], info: m[6].trim() }] : [];
    });
}

/** The prefixes of `show route` (those BIRD's table holds, best or not). */
export function parseRoutePrefixes(lines: BirdLine[]): Set<string> {
  const out = new Set<string>();
  for (const l of lines) {
    if (l.code !== 1007) continue;
    const m = /^([0-9a-fA-F.:]+\/\d+)\s/.exec(l.text);
    if (m) out.add(m[1]);
  }
  return out;
}
