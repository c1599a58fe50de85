// resolv.conf -> CNI DNS, as the reference's dns.go reads it: nameserver, domain, search, options.
import type { DNS } from '../../pkg/cni/types';
import { readConfigFile } from '../../pkg/files';

export function parseResolvConf(text: string): DNS {
  const dns: DNS = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const [key, ...fields] = line.split(/\s+/);
    switch (key) {
      case 'nameserver':
        if (fields[0]) (dns.nameservers ??= []).push(fields[0]);
        break;
      case 'domain':
        if (fields[0]) dns.domain = fields[0];
        break;
      case 'search':
        // a later search line replaces an earlier one, as in resolv.conf(5)
        dns.search = fields;
        break;
      case 'options':
        (dns.options ??= []).push(...fields);
        break;
    }
  }
  return dns;
}

export function readResolvConf(path: string): DNS {
  return parseResolvConf(readConfigFile(path, 'ipam.resolvConf'));
}
