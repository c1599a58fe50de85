// Who is told of what the doors did: each finished spawn (pkg/exec.ts tells) and each kernel op carried out in
// process (pkg/ip/ops.ts tells). The per-call debug log (pkg/cni/log.ts) listens. A module of its own, so the
// log needs no import of the doors.
export type SpawnObserver = (file: string, args: readonly string[], ms: number, exitCode: number | undefined) => void;
/** an op in ip's words, where (a netns path, or undefined for ours), how long, and the refusal if any */
export type OpObserver = (op: string, netns: string | undefined, ms: number, error: string | undefined) => void;

let spawnObserver: SpawnObserver | undefined;
let opObserver: OpObserver | undefined;

export function observeDoors(spawns: SpawnObserver | undefined, ops: OpObserver | undefined): void {
  spawnObserver = spawns;
  opObserver = ops;
}

export function observing(): boolean {
  return spawnObserver !== undefined;
}

export function observingOps(): boolean {
  return opObserver !== undefined;
}

export function spawned(file: string, args: readonly string[], ms: number, exitCode: number | undefined): void {
  spawnObserver?.(file, args, ms, exitCode);
}

export function opDone(op: string, netns: string | undefined, ms: number, error: string | undefined): void {
  opObserver?.(op, netns, ms, error);
}
