// Our plugins answer to their plain names (`make install`: a drop-in for the reference plugins) and to `tscni-`
// names (the Kubernetes installer: other networks on the node keep the reference `bridge` and `host-local`, and a
// package upgrade that replaces those cannot swap our IPAM out from under our configs).
export const NAME_PREFIX = 'tscni-';

/** `tscni-bridge` -> `bridge`; a plain name is returned as is. */
export function plainType(type: string): string {
  return type.startsWith(NAME_PREFIX) ? type.slice(NAME_PREFIX.length) : type;
}

/** Whether an `ipam.type` is our host-local under either name. */
export function isHostLocal(type: string | undefined): boolean {
  return type !== undefined && plainType(type) === 'host-local';
}
