// The stand-in for signal-exit, in real child processes: handlers run on a normal exit and on SIGTERM, and
// the process still dies of the signal.
import { spawnSync } from 'child_process';
import * as path from 'path';

const shim = path.join(__dirname, 'signal-exit.ts');

function node(body: string) {
  // the child runs the file's own code, transpiled here (the child is plain node)
  const ts = require('typescript') as typeof import('typescript');
  const src = ts.transpileModule(require('fs').readFileSync(shim, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const script = `const m = { exports: {} }; (function (module, exports) { ${src} })(m, m.exports); const onExit = m.exports; ${body}`;
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
}

describe('signal-exit stand-in', () => {
  it('runs each handler once at a normal exit, with the exit code; a removed one not at all', () => {
    const r = node(`onExit((c, s) => process.stdout.write('a' + c + s)); const rm = onExit(() => process.stdout.write('b')); rm(); process.exitCode = 3;`);
    expect(r.stdout).toBe('a3null');
    expect(r.status).toBe(3);
  });
  it('runs the handlers on SIGTERM, then the process dies of SIGTERM', () => {
    const r = node(`onExit((c, s) => process.stdout.write('got ' + s)); setTimeout(() => {}, 5000); process.kill(process.pid, 'SIGTERM');`);
    expect(r.stdout).toBe('got SIGTERM');
    expect(r.signal).toBe('SIGTERM');
  });
  it('leaves the decision to a program that listens for the signal itself', () => {
    const r = node(
      `onExit((c, s) => process.stdout.write('h' + (s || c))); process.on('SIGINT', () => { process.stdout.write(' own'); process.exit(0); }); setTimeout(() => {}, 5000); process.kill(process.pid, 'SIGINT');`,
    );
    expect(r.stdout).toBe('hSIGINT own');
    expect(r.status).toBe(0);
  });
});
