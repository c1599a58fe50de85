// CHECK and the doctor in BGP mode: the sessions as BIRD reports them, and for every peer pod CIDR whether BGP
// brought its route into the kernel, with the reason in plain words when not.
import { leftOutLines } from '../fabric/plan';
import { birdCommand, parseProtocols, parseRoutePrefixes, sessionName } from './bird';
import type { BgpPlan } from './plan';

/** `kernel`: the destinations of BIRD's routes in the main table (`ip route show proto bird`). */
export async function bgpProblems(p: BgpPlan, kernel: Set<string>): Promise<string[]> {
  const problems = leftOutLines(p);
  let protocols;
  let learned: Set<string>;
  try {
    protocols = parseProtocols(await birdCommand(p.socket, 'show protocols'));
    learned = parseRoutePrefixes(await birdCommand(p.socket, 'show route'));
  } catch (e) {
    const missing = p.expected.filter((x) => !kernel.has(x.podCIDR)).length;
    return [...problems, `${(e as Error).message}: is \`tscni bgp run\` running on this node? (${missing} peer route(s) missing)`];
  }
  let established = 0;
  for (const n of p.bird.neighbors) {
    const s = protocols.find((x) => x.name === sessionName(n.address));
    if (!s) problems.push(`BGP session with ${n.address} (AS ${n.asn}, ${n.key}) is not in BIRD's config yet`);
    else if (!s.info.startsWith('Established'))
      problems.push(`BGP session with ${n.address} (AS ${n.asn}, ${n.key}) is not Established: ${s.state} ${s.info}`.trim());
    else established++;
  }
  for (const x of p.expected) {
    if (kernel.has(x.podCIDR)) continue;
    if (learned.has(x.podCIDR)) problems.push(`route to ${x.podCIDR} (${x.key}) was received over BGP but is not installed in the kernel`);
    else problems.push(`no route to ${x.podCIDR} (${x.key}) received over BGP${established ? '' : ': no BGP session is Established'}`);
  }
  return problems;
}
