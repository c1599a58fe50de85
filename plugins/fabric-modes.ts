// The fabric modes by name, for what picks one from a config or a flag (tscni fabric, tscni k8s, tscni doctor).
// A plugin call loads only its own mode (plugins/main.ts).
import { CniError, ErrCode } from '../pkg/cni/errors';
import { plainType } from '../pkg/cni/names';
import type { FabricMode } from '../pkg/fabric/mode';
import { hostGwMode } from './host-gw/host-gw';
import { ipipMode } from './ipip/ipip';
import { vxlanMode } from './vxlan/vxlan';

export const FABRIC_MODES: Readonly<Record<string, FabricMode<any>>> = { 'host-gw': hostGwMode, vxlan: vxlanMode, ipip: ipipMode }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The mode of a plugin type, under its plain or its `tscni-` name; undefined for another type. */
export function fabricModeOf(type: unknown): FabricMode<unknown> | undefined {
  return typeof type === 'string' ? FABRIC_MODES[plainType(type)] : undefined;
}

export function fabricModeNamed(name: string): FabricMode<unknown> {
  const m = FABRIC_MODES[plainType(name)];
  if (!m) throw new CniError(ErrCode.InvalidConfig, `invalid config: type: unknown fabric mode ${JSON.stringify(name)}`);
  return m;
}
