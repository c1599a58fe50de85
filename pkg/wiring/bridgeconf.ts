// The bridge plugin's configuration: the reference plugin's keys, validated with the key named in every error.
// Shared by bridge and the fabric plugins (host-gw, vxlan, ipip), which wire their pods the same way.
import { ConfigReader } from '../cni/config';
import { CniError, ErrCode } from '../cni/errors';
import { checkCniArgs } from '../cni/skel';
import type { CmdArgs, NetConf } from '../cni/types';
import { isValidMac } from '../ip/mac';
import { validateBackend, type MasqBackend } from '../nat';
import { isValidLinkName } from './names';

export interface BridgeConf {
  net: NetConf;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  ipMasqBackend?: MasqBackend;
  /** undefined: the MTU of the default-route interface */
  mtu?: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  macspoofchk: boolean;
  enabledad: boolean;
  portIsolation: boolean;
  disableContainerInterface: boolean;
  /** an IPAM type is set; `"ipam": {}` or no `ipam` is the L2-only mode (as in the reference) */
  isLayer3: boolean;
  /** the pod interface MAC requested by runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC */
  mac?: string;
}

export const KNOWN_CNI_ARGS = ['IP', 'MAC', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'];

/** The requested MAC; later sources win as in the reference: CNI_ARGS, then args.cni.mac, then runtimeConfig.mac. */
export function requestedMac(a: CmdArgs): string | undefined {
  const c = new ConfigReader(a.conf.raw);
  const candidates: [string, string | undefined][] = [
    ['CNI_ARGS MAC', a.args.MAC],
    ['args.cni.mac', c.object('args')?.object('cni')?.string('mac')],
    ['runtimeConfig.mac', c.object('runtimeConfig')?.string('mac')],
  ];
  let mac: string | undefined;
  for (const [key, v] of candidates) {
    if (v === undefined || v === '') continue;
    if (!isValidMac(v)) throw new CniError(ErrCode.InvalidConfig, `invalid config: ${key}: ${JSON.stringify(v)} is not a MAC address`);
    if (parseInt(v.slice(0, 2), 16) & 1) throw new CniError(ErrCode.InvalidConfig, `invalid config: ${key}: ${v} is a multicast MAC`);
    mac = v.toLowerCase();
  }
  return mac;
}

export function parseBridgeConf(a: CmdArgs): BridgeConf {
  const c = new ConfigReader(a.conf.raw);
  checkCniArgs(a.args, KNOWN_CNI_ARGS);
  const bridge = c.string('bridge', 'cni0');
  if (!isValidLinkName(bridge)) throw c.fail('bridge', `${JSON.stringify(bridge)} is not a valid interface name`);
  const isDefaultGateway = c.bool('isDefaultGateway');
  const conf: BridgeConf = {
    net: a.conf,
    bridge,
    isDefaultGateway,
    isGateway: c.bool('isGateway') || isDefaultGateway,
    forceAddress: c.bool('forceAddress'),
    ipMasq: c.bool('ipMasq'),
    ipMasqBackend: validateBackend(c.obj.ipMasqBackend),
    mtu: c.int('mtu', undefined, 0, 65535) || undefined,
    hairpinMode: c.bool('hairpinMode'),
    promiscMode: c.bool('promiscMode'),
    vlan: c.int('vlan', 0, 0, 4094),
    macspoofchk: c.bool('macspoofchk'),
    enabledad: c.bool('enabledad'),
    portIsolation: c.bool('portIsolation'),
    disableContainerInterface: c.bool('disableContainerInterface'),
    isLayer3: !!a.conf.ipam?.type,
    mac: requestedMac(a),
  };
  if (conf.mtu !== undefined && conf.mtu < 68) throw c.fail('mtu', `${conf.mtu} is below the IPv4 minimum of 68`);
  if (conf.hairpinMode && conf.promiscMode) {
    throw new CniError(ErrCode.InvalidConfig, 'invalid config: hairpinMode and promiscMode cannot both be true');
  }
  if (conf.disableContainerInterface && conf.isLayer3) {
    throw new CniError(ErrCode.InvalidConfig, 'invalid config: disableContainerInterface cannot be used with an ipam type');
  }
  for (const k of ['vlanTrunk', 'preserveDefaultVlan']) {
    if (c.has(k)) throw c.unsupported(k, 'not supported by tscni bridge');
  }
  return conf;
}
