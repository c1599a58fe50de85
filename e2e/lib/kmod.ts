// Kernel modules of a guest kernel, loaded with busybox insmod (no modprobe in an initramfs or a UML guest):
// which .ko files, in which order, from the kernel's own modules.dep.
import * as fs from 'fs';
import * as path from 'path';

/** modules.dep of a kernel: module name -> [its .ko path, its dependencies' .ko paths]. */
function readModulesDep(dir: string): Map<string, { ko: string; deps: string[] }> {
  const m = new Map<string, { ko: string; deps: string[] }>();
  for (const line of fs.readFileSync(path.join(dir, 'modules.dep'), 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const ko = line.slice(0, i).trim();
    const deps = line
      .slice(i + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    m.set(moduleName(ko), { ko: path.join(dir, ko), deps: deps.map((d) => path.join(dir, d)) });
  }
  return m;
}

/** 'kernel/net/ipv4/ip_tunnel.ko' -> 'ip_tunnel' (modprobe treats - and _ alike) */
function moduleName(ko: string): string {
  return path
    .basename(ko)
    .replace(/\.ko(\.\w+)?$/, '')
    .replace(/-/g, '_');
}

function builtinModules(dir: string): Set<string> {
  try {
    return new Set(fs.readFileSync(path.join(dir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(moduleName));
  } catch {
    return new Set();
  }
}

/**
 * The .ko files to insmod, dependencies first, for modules given by name (`ipip`, `veth`, `bridge`) of the
 * kernel whose modules live in `dir`; built-in ones are skipped. modules.dep lists a module's full dependency
 * closure, so each dependency is loaded by its own entry first (depth first), the order modprobe would use.
 * busybox insmod reads plain .ko files only, so a compressed one is an error naming it.
 */
export function moduleLoadOrder(names: readonly string[], dir: string): string[] {
  const dep = readModulesDep(dir);
  const builtin = builtinModules(dir);
  const byKo = new Map([...dep.values()].map((v) => [v.ko, v]));
  const order: string[] = [];
  const visit = (ko: string, stack: string[]) => {
    if (order.includes(ko) || stack.includes(ko)) return;
    for (const d of byKo.get(ko)?.deps ?? []) visit(d, [...stack, ko]);
    order.push(ko);
  };
  for (const n of names) {
    const key = n.replace(/-/g, '_');
    if (builtin.has(key)) continue;
    const e = dep.get(key);
    if (!e) throw new Error(`module ${n} is neither built into the kernel of ${dir} nor in its modules.dep`);
    visit(e.ko, []);
  }
  const packed = order.find((ko) => !ko.endsWith('.ko'));
  if (packed) throw new Error(`${packed} is compressed: the guest loads modules with busybox insmod, which reads plain .ko files`);
  return order;
}
