// The shipped DaemonSet manifest and its ConfigMap's templates, for the tests that render them (the unit tests of
// `tscni k8s` and the netns-simulated Kubernetes e2e).
import * as fs from 'fs';
import * as path from 'path';

export const MANIFEST = fs.readFileSync(path.join(__dirname, '..', '..', '..', '..', 'conf', 'kubernetes', 'tscni.yaml'), 'utf8');

/** The ConfigMap's data: `  key: value` and `  key: |` literal blocks (indented 4) under `data:`. */
export function configMapData(yaml = MANIFEST): Record<string, string> {
  const doc = yaml.split(/^---$/m).find((d) => /^kind: ConfigMap$/m.test(d))!;
  const lines = doc.slice(doc.indexOf('\ndata:\n') + 7).split('\n');
  const out: Record<string, string> = {};
  let key: string | undefined;
  for (const l of lines) {
    const m = /^ {2}([\w.-]+): ?(.*)$/.exec(l);
    if (m) {
      key = m[2] === '|' ? m[1] : undefined;
      if (!key) out[m[1]] = m[2];
      else out[key] = '';
    } else if (key && (l.startsWith('    ') || l === '')) out[key] += l.slice(4) + '\n';
    else if (!l.startsWith('  #')) key = undefined;
  }
  return out;
}
