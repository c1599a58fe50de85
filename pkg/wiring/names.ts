// Deterministic node-side names, so DEL and a repeated ADD find what an earlier ADD made.
import { sha256Hex } from '../sha256';

/** `<prefix>` + 11 hex of sha256(containerID/ifname): 15 characters, the kernel's limit. */
export function hostVethName(containerId: string, ifName: string, prefix = 'veth'): string {
  const h = sha256Hex(`${containerId}/${ifName}`);
  return prefix + h.slice(0, 15 - prefix.length);
}

/** Names of node-side links we accept from config (bridge, vtep): what `ip link` accepts. */
export function isValidLinkName(name: string): boolean {
  return name.length > 0 && name.length <= 15 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}
