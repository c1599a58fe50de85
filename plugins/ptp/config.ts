// The ptp plugin's configuration: the reference ptp keys (ipMasq, ipMasqBackend, mtu, ipam, dns),
// validated up front so refused input changes nothing on the node or in IPAM.
import { ConfigReader } from '../../pkg/cni/config';
import type { CmdArgs, DNS } from '../../pkg/cni/types';
import { validateBackend, type MasqBackend } from '../../pkg/nat';

export interface PtpConf {
  ipMasq: boolean;
  ipMasqBackend?: MasqBackend;
  /** undefined: the MTU of the default-route interface */
  mtu?: number;
  dns?: DNS;
}

function parseDns(c: ConfigReader): DNS | undefined {
  const d = c.object('dns');
  if (!d) return undefined;
  const dns: DNS = {};
  const nameservers = d.stringList('nameservers');
  const domain = d.string('domain');
  const search = d.stringList('search');
  const options = d.stringList('options');
  if (nameservers?.length) dns.nameservers = nameservers;
  if (domain) dns.domain = domain;
  if (search?.length) dns.search = search;
  if (options?.length) dns.options = options;
  return Object.keys(dns).length ? dns : undefined;
}

export function parsePtpConf(a: CmdArgs): PtpConf {
  const c = new ConfigReader(a.conf.raw);
  const conf: PtpConf = {
    ipMasq: c.bool('ipMasq'),
    ipMasqBackend: validateBackend(c.obj.ipMasqBackend),
    // 0 means "not set", as in the reference
    mtu: c.int('mtu', undefined, 0, 65535) || undefined,
    dns: parseDns(c),
  };
  if (conf.mtu !== undefined && conf.mtu < 68) throw c.fail('mtu', `${conf.mtu} is below the IPv4 minimum of 68`);
  // a routed pod needs an address: there is no layer-2 only ptp
  const ipam = c.object('ipam');
  if (!ipam) throw c.fail('ipam', 'is required');
  ipam.requiredString('type');
  return conf;
}
