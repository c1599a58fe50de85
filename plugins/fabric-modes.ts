// The fabric modes by name, for what picks one from a config or a flag (tscni fabric, tscni k8s, tscni doctor).
// A plugin call loads only its own mode (plugins/main.ts).
import { CniError, ErrCode } from '../pkg/cni/errors';
import type { FabricMode } from '../pkg/fabric/mode';
import { hostGwMode } from './host-gw/host-gw';
import { ipipMode } from './ipip/ipip';
import { vxlanMode } from './vxlan/vxlan';

export const FABRIC_MODES: Readonly<Record<string, FabricMode<any>>> = { 'host-gw': hostGwMode, vxlan: vxlanMode, ipip: ipipMode }; // eslint-disable-line @typescript-eslint/no-explicit-any

export function fabricModeNamed(name: string): FabricMode<unknown> {
  const m = FABRIC_MODES[name];
  if (!m) throw new CniError(ErrCode.InvalidConfig, `invalid config: type: unknown fabric mode ${JSON.stringify(name)}`);
  return m;
}
