// Pure planning shared by both backends: attachments, their tags, and the rules each one owns.
import { sha256Hex } from '../sha256';
import { CniError, ErrCode } from '../cni/errors';
import { contains, formatCIDR, formatIP, networkOf, parseCIDR, parseIP, type Family } from '../ipnet';

export interface MasqAttachment {
  network: string;
  containerId: string;
  ifName: string;
}

export interface MasqRule extends MasqAttachment {
  /** pod address, no prefix (a prefix is tolerated and dropped) */
  ip: string;
  /** CIDRs not to masquerade: the pod subnet, a cluster CIDR */
  excluded: string[];
}

/** 32 bits of the attachment tag: the data of its nft map elements, so a clash with another attachment is detected. */
export function attachmentMark(tag: string): number {
  return parseInt(tag.slice(9, 17), 16);
}

/** 8 hex of the network name: every object of a network shares it, so GC can find the network's own. */
export function networkTag(network: string): string {
  return sha256Hex(`tscni-net\0${network}`).slice(0, 8);
}

/**
 * `<net8>-<att12>`: names the per-attachment chain in both backends. 12 hex (48 bits) keeps
 * collisions negligible among a node's attachments and fits iptables' 28-char chain names.
 */
export function attachmentTag(a: MasqAttachment): string {
  return `${networkTag(a.network)}-${sha256Hex(`${a.network}\0${a.containerId}\0${a.ifName}`).slice(0, 12)}`;
}

/** Readable text for operators; characters that could break nft/iptables quoting become `_`. */
export function attachmentComment(a: MasqAttachment): string {
  const clean = (s: string, n: number): string => s.replace(/[^A-Za-z0-9._:+=@-]/g, '_').slice(0, n);
  return `tscni net=${clean(a.network, 40)} id=${clean(a.containerId, 24)} if=${clean(a.ifName, 15)}`;
}

/** What one attachment owns: its source addresses and the destinations it leaves alone, per family. */
export interface AttachmentPlan {
  att: MasqAttachment;
  tag: string;
  comment: string;
  /** canonical addresses */
  ips: { family: Family; ip: string }[];
  /** canonical network CIDRs, deduplicated, per family present in ips */
  excluded: { family: Family; cidr: string }[];
}

export const MULTICAST: Record<Family, string> = { 4: '224.0.0.0/4', 6: 'ff00::/8' };

/** Group rules by attachment; validate and canonicalise addresses so generated text matches what the kernel prints. */
export function planAttachments(rules: MasqRule[]): AttachmentPlan[] {
  const byTag = new Map<string, AttachmentPlan>();
  for (const r of rules) {
    const att = { network: r.network, containerId: r.containerId, ifName: r.ifName };
    const tag = attachmentTag(att);
    let p = byTag.get(tag);
    if (!p) {
      p = { att, tag, comment: attachmentComment(att), ips: [], excluded: [] };
      byTag.set(tag, p);
    }
    const a = parseIP(r.ip.split('/')[0]);
    if (!a) throw new CniError(ErrCode.InvalidConfig, `ipMasq: invalid pod address ${JSON.stringify(r.ip)}`);
    const ip = formatIP(a.family, a.ip);
    if (!p.ips.some((x) => x.ip === ip)) p.ips.push({ family: a.family, ip });
    for (const c of r.excluded) {
      const n = parseCIDR(c);
      if (!n) throw new CniError(ErrCode.InvalidConfig, `ipMasq: invalid excluded CIDR ${JSON.stringify(c)}`);
      const cidr = formatCIDR(networkOf(n));
      if (!p.excluded.some((x) => x.cidr === cidr)) p.excluded.push({ family: n.family, cidr });
    }
  }
  for (const p of byTag.values()) {
    const fams = new Set(p.ips.map((x) => x.family));
    // nested prefixes collapse to the outer one (pod subnet inside the cluster CIDR): nft interval
    // maps reject overlapping elements, and the inner rule would never match anyway
    const nets = p.excluded.map((x) => ({ x, n: parseCIDR(x.cidr)! }));
    p.excluded = nets
      .filter(({ x, n }) => fams.has(x.family) && !nets.some((o) => o.x !== x && o.n.prefix < n.prefix && contains(o.n, n.family, n.ip)))
      .map(({ x }) => x);
  }
  return [...byTag.values()];
}
