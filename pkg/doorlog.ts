// Who is told of each finished spawn: the per-call debug log (pkg/cni/log.ts) listens, pkg/exec.ts tells.
// A module of its own, so the log needs no import of the door that spawns.
export type SpawnObserver = (file: string, args: readonly string[], ms: number, exitCode: number | undefined) => void;

let observer: SpawnObserver | undefined;

export function observeSpawns(fn: SpawnObserver | undefined): void {
  observer = fn;
}

export function observing(): boolean {
  return observer !== undefined;
}

export function spawned(file: string, args: readonly string[], ms: number, exitCode: number | undefined): void {
  observer?.(file, args, ms, exitCode);
}
