// Masquerade for pod traffic leaving the pod subnet (and a cluster CIDR): nftables by default,
// iptables as a fallback. Plugins call only this module. Rules are tagged per attachment
// (network + containerId + ifName), so DEL and GC remove exactly their own without knowing addresses.
import * as fs from 'fs';
import { CniError, ErrCode } from '../cni/errors';
import type { Family } from '../ipnet';
import { networkTag, planAttachments, attachmentTag, type MasqAttachment, type MasqRule, type AttachmentPlan } from './model';
import { findTool } from './tools';
import * as nft from './nft';
import * as ipt from './iptables';

export type { MasqAttachment, MasqRule } from './model';
export type MasqBackend = 'nftables' | 'iptables';

export interface NatOptions {
  /** run the tools inside this network namespace, given by path (tests, doctor) */
  netns?: string;
}

const BACKENDS: readonly MasqBackend[] = ['nftables', 'iptables'];
const FAMILIES: readonly Family[] = [4, 6];

/** Config-time check of `ipMasqBackend`: undefined when unset, else the backend; code 2 for anything else. */
export function validateBackend(configured: unknown): MasqBackend | undefined {
  if (configured === undefined || configured === null) return undefined;
  if (typeof configured === 'string' && (BACKENDS as readonly string[]).includes(configured)) return configured as MasqBackend;
  throw new CniError(ErrCode.UnsupportedField, `unsupported value for ipMasqBackend: ${JSON.stringify(configured)}: expected "nftables" or "iptables"`);
}

/**
 * The backend to use: the configured one, else nftables when `nft` is installed, else iptables.
 * Availability is judged by the binary being present (no spawn: this runs on every ADD).
 */
export async function resolveBackend(configured: string | undefined, _o: NatOptions = {}): Promise<MasqBackend> {
  const b = validateBackend(configured);
  if (b) return b;
  if (findTool('nft')) return 'nftables';
  if (findTool('iptables-restore') || findTool('ip6tables-restore')) return 'iptables';
  throw new CniError(ErrCode.KernelOperation, 'ipMasq: neither nft nor iptables-restore is installed');
}

function nftIO(o: NatOptions, required: boolean): nft.NftIO | undefined {
  const bin = findTool('nft');
  if (!bin && required) throw new CniError(ErrCode.KernelOperation, 'ipMasqBackend "nftables": the nft program is not installed');
  return bin ? { nft: bin, netns: o.netns } : undefined;
}

function iptIO(f: Family, o: NatOptions, required: boolean): ipt.IptIO | undefined {
  const base = f === 4 ? 'iptables' : 'ip6tables';
  const save = findTool(`${base}-save`);
  const restore = findTool(`${base}-restore`);
  if ((!save || !restore) && required) {
    throw new CniError(ErrCode.KernelOperation, `ipMasqBackend "iptables": ${base}-save/${base}-restore are not installed`);
  }
  return save && restore ? { save, restore, netns: o.netns } : undefined;
}

const familiesOf = (plans: AttachmentPlan[]): Family[] => FAMILIES.filter((f) => plans.some((p) => p.ips.some((x) => x.family === f)));

// A DEL must not read two iptables nat tables (two spawns) on a node where the iptables backend never ran:
// its first setup in a network namespace leaves a marker, named by the namespace's inode, and teardown reads
// iptables only where one exists or the marker directory is absent (rules from before markers existed).
// /run empties at boot, as the rules do. GC always sweeps both backends.
export const MARKER_DIR = '/run/tscni';

function iptablesMarker(o: NatOptions): string | undefined {
  try {
    return `${MARKER_DIR}/iptables-used.netns-${fs.statSync(o.netns ?? '/proc/self/ns/net').ino}`;
  } catch {
    return undefined;
  }
}

function markIptablesUsed(o: NatOptions): void {
  const m = iptablesMarker(o);
  try {
    fs.mkdirSync(MARKER_DIR, { recursive: true, mode: 0o755 });
    if (m) fs.writeFileSync(m, '');
  } catch (e) {
    // without the directory teardown reads iptables anyway; with it, a missing marker would hide our rules
    if (fs.existsSync(MARKER_DIR)) throw new CniError(ErrCode.IOFailure, `ipMasq: cannot write ${m ?? MARKER_DIR}: ${(e as Error).message}`);
  }
}

function forgetIptables(o: NatOptions): void {
  const m = iptablesMarker(o);
  try {
    if (m) fs.rmSync(m, { force: true });
  } catch {
    /* it only costs later DELs two reads */
  }
}

function iptablesMayHoldRules(o: NatOptions): boolean {
  const m = iptablesMarker(o);
  return !m || fs.existsSync(m) || !fs.existsSync(MARKER_DIR);
}

/** Install the rules; running it again with the same rules leaves the same ruleset. */
export async function setupMasq(backend: MasqBackend, rules: MasqRule[], o: NatOptions = {}): Promise<void> {
  const plans = planAttachments(rules);
  if (!plans.length) return;
  if (backend === 'nftables') {
    // the marker directory says "markers are kept here": without it, teardown would also read iptables
    try {
      if (!fs.existsSync(MARKER_DIR)) fs.mkdirSync(MARKER_DIR, { recursive: true, mode: 0o755 });
    } catch {
      /* read-only /run: teardown then keeps reading iptables, as before markers */
    }
    return nft.setup(nftIO(o, true)!, plans);
  }
  markIptablesUsed(o);
  await Promise.all(
    familiesOf(plans).map(async (f) => {
      const io = iptIO(f, o, true)!;
      await ipt.restore(io, ipt.setupRestore(await ipt.save(io), plans, f));
    }),
  );
}

/** Remove what the selected attachment tags own, in every backend whose tools exist, in parallel. */
async function removeEverywhere(o: NatOptions, select: (tag: string) => boolean, allIptables: boolean, known?: AttachmentPlan[]): Promise<void> {
  const jobs: Promise<void>[] = [];
  const n = nftIO(o, false);
  if (n)
    jobs.push(
      (async () => {
        if (!known?.length || !(await nft.removeKnown(n, known))) await nft.removeTagged(n, select);
      })(),
    );
  const fromChain = (c: string): boolean => c.startsWith(ipt.CHAIN_PREFIX) && select(c.slice(ipt.CHAIN_PREFIX.length));
  const saved: ipt.NatTable[] = [];
  const iptFamilies = allIptables || iptablesMayHoldRules(o) ? FAMILIES : [];
  for (const f of iptFamilies) {
    const io = iptIO(f, o, false);
    if (io) jobs.push(ipt.save(io).then((t) => (saved.push(t), ipt.restore(io, ipt.deleteRestore(t, fromChain)))));
  }
  const res = await Promise.allSettled(jobs);
  // no chain of ours left in either family (one of ours was just removed at most): later DELs in this namespace
  // skip iptables again. This also clears the marker of a deleted namespace whose inode number came back.
  if (iptFamilies.length && res.every((r) => r.status === 'fulfilled') && saved.length === iptFamilies.length) {
    const left = saved.some((t) => [...t.chains].some((c) => c.startsWith(ipt.CHAIN_PREFIX) && !fromChain(c)));
    if (!left) forgetIptables(o);
  }
  const errs = res.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as Error).message);
  if (errs.length) throw new CniError(ErrCode.KernelOperation, errs.join('; '));
}

/**
 * Remove every rule of the attachment in both backends; needs no address, succeeds when nothing is there.
 * `known`: the rules ADD made, when the caller knows them (from prevResult): nftables then removes them in one
 * transaction without listing, falling back to the listing when they belong to someone else.
 */
export async function teardownMasq(att: MasqAttachment, o: NatOptions = {}, known?: MasqRule[]): Promise<void> {
  const tag = attachmentTag(att);
  let plans: AttachmentPlan[] | undefined;
  try {
    plans = known?.length ? planAttachments(known).filter((p) => p.tag === tag) : undefined;
  } catch {
    plans = undefined; // addresses we cannot read: find the rules by tag
  }
  await removeEverywhere(o, (t) => t === tag, false, plans);
}

/** [] when the rules are in place, else what is wrong, in words for an operator. */
export async function checkMasq(backend: MasqBackend, rules: MasqRule[], o: NatOptions = {}): Promise<string[]> {
  const plans = planAttachments(rules);
  if (!plans.length) return [];
  if (backend === 'nftables') return nft.checkState(await nft.listTable(nftIO(o, true)!), plans);
  const per = await Promise.all(familiesOf(plans).map(async (f) => ipt.checkTable(await ipt.save(iptIO(f, o, true)!), plans, f)));
  return per.flat();
}

/** Remove the rules of `network` whose attachment is not in `valid` (CNI GC), in both backends. */
export async function gcMasq(network: string, valid: MasqAttachment[], o: NatOptions = {}): Promise<void> {
  const keep = new Set(valid.map((a) => attachmentTag({ ...a, network })));
  const prefix = `${networkTag(network)}-`;
  await removeEverywhere(o, (t) => t.startsWith(prefix) && !keep.has(t), true);
}

/**
 * Uninstall: every masquerade and MAC-spoof rule of `network` in both backends, then our nftables tables when no
 * other network has anything in them. Returns the tables it deleted.
 */
export async function removeNetworkRules(network: string, o: NatOptions = {}): Promise<string[]> {
  const spoof = require('./macspoof') as typeof import('./macspoof');
  await gcMasq(network, [], o);
  const n = nftIO(o, false);
  if (!n) return [];
  await spoof.gcSpoofchk(network, [], o);
  const dropped: string[] = [];
  const st = await nft.listTable(n);
  if (st.exists && !st.elements.length && (await nft.apply(n, `delete table inet ${nft.TABLE}\n`)).ok) dropped.push(`inet ${nft.TABLE}`);
  if (await spoof.dropSpoofTableIfEmpty(o)) dropped.push(`bridge ${spoof.SPOOF_TABLE}`);
  return dropped;
}
