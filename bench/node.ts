// A bench's node namespace, like a real node: loopback, an uplink holding an address and the default route.
import { run } from '../pkg/exec';

export async function makeNode(ns: string, uplink = { dev: 'uplink', cidr: '203.0.113.1/24', gateway: '203.0.113.2' }): Promise<void> {
  const ip = (args: string[]) => run('ip', ['-n', ns, ...args]);
  await run('ip', ['netns', 'add', ns]);
  await ip(['link', 'set', 'lo', 'up']);
  await ip(['link', 'add', uplink.dev, 'type', 'veth', 'peer', 'name', `${uplink.dev}-peer`]);
  await ip(['addr', 'add', uplink.cidr, 'dev', uplink.dev]);
  await ip(['link', 'set', uplink.dev, 'up']);
  await ip(['link', 'set', `${uplink.dev}-peer`, 'up']);
  await ip(['route', 'add', 'default', 'via', uplink.gateway]);
}
