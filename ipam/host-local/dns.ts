// resolv.conf -> CNI DNS, as the reference's dns.go reads it: nameserver, domain, search, options.
import * as fs from 'fs';
import { CniError, ErrCode } from '../../pkg/cni/errors';
import type { DNS } from '../../pkg/cni/types';

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
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new CniError(ErrCode.InvalidConfig, `invalid config: ipam.resolvConf: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseResolvConf(text);
}
