// A plugin with a bug: its ADD throws from a timer callback, where no await can catch it (skel.test.ts
// runs this as a real process to see what a runtime would read on stdout).
import { runPlugin } from '../skel';

void runPlugin('buggy', () => ({
  add: () =>
    new Promise(() => {
      setTimeout(() => {
        throw new Error('boom in a callback');
      }, 1);
    }),
  del: async () => undefined,
  check: async () => undefined,
})).then((code) => (process.exitCode = code));
