// What the agents follow on disk: their conf and the peers file. Directories are watched, not the files: editors
// and atomic writers replace a file by rename, which ends a watch on the file itself.
import * as fs from 'fs';
import * as path from 'path';

/** Call onChange when any of `files` is written or replaced; returns the function that stops watching. */
export function watchFiles(files: Array<string | undefined>, onChange: () => void): () => void {
  const targets = new Map<string, Set<string>>();
  for (const f of files) {
    if (!f) continue;
    const dir = path.dirname(path.resolve(f));
    if (!targets.has(dir)) targets.set(dir, new Set());
    targets.get(dir)!.add(path.basename(f));
  }
  const watchers = [...targets].map(([dir, names]) =>
    fs.watch(dir, (_ev, name) => {
      if (!name || names.has(name.toString())) onChange();
    }),
  );
  return () => {
    for (const w of watchers) w.close();
  };
}
