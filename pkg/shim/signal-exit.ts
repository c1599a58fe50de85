// Bundled in place of signal-exit (its v3 API: onExit(fn) returns a remover) by scripts/bundle.sh. Its two
// users here: proper-lockfile, which drops the locks it holds when the process ends, and execa, whose
// exit-time kill we turn off (cleanup: false). The original loads `assert` and hooks 15 signals when it is
// loaded, at every call's start-up. A plugin ends by exiting, or on SIGTERM/SIGINT/SIGHUP from its runtime:
// those are the ends handled here.
type Handler = (code: number | null, signal: NodeJS.Signals | null) => void;

const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
const handlers = new Set<Handler>();
let hooked = false;

function runHandlers(code: number | null, signal: NodeJS.Signals | null): void {
  for (const h of [...handlers]) {
    handlers.delete(h);
    try {
      h(code, signal);
    } catch {
      /* one failing handler must not keep the others from running */
    }
  }
}

function hook(): void {
  hooked = true;
  process.once('exit', (code) => runHandlers(code, null));
  for (const sig of SIGNALS) {
    process.once(sig, () => {
      runHandlers(null, sig);
      // die of the signal, as without us; unless the program listens for it itself (it then decides)
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

function onExit(fn: Handler): () => void {
  if (!hooked) hook();
  handlers.add(fn);
  return () => {
    handlers.delete(fn);
  };
}

export = onExit;
