// host-gw: pods on a node-local bridge; a route to each peer's pod CIDR via the peer's node IP. Every peer must
// be on this node's L2 segment (use vxlan or ipip across routers).
import { directRoute, type FabricMode } from '../../pkg/fabric/mode';
import { fabricPlugin } from '../../pkg/fabric/plugin';
import { fabricDoctorView } from '../bridge/bridge';

export const hostGwMode: FabricMode<Record<string, never>> = {
  name: 'host-gw',
  options: () => ({}),
  overhead: () => 0,
  nextHopInPodFamily: true,
  peer(ctx, p, onLink) {
    if (!onLink) {
      return {
        leftOut:
          `nodeIP ${p.nodeIP} is not on-link on ${ctx.underlay.dev} (${ctx.underlay.connected.join(', ') || 'no subnet'}); ` +
          'host-gw needs every peer on the same L2 segment: use vxlan (or ipip) for this cluster',
      };
    }
    return { route: directRoute(ctx, p), via: 'direct' };
  },
};

export const plugin = fabricPlugin(hostGwMode);

export const doctorView = fabricDoctorView(hostGwMode);
