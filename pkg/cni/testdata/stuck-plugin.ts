// A plugin whose ADD waits on something that never answers (a ref'd timer keeps the process up): skel.test.ts
// runs it as a real process with a short budget, to see the watchdog answer for it.
import { nowDoing, setBudget } from '../budget';
import { runPlugin } from '../skel';

void runPlugin('stuck', () => ({
  add: () =>
    new Promise(() => {
      setBudget(Number(process.env.BUDGET_SECONDS), 'a test budget');
      nowDoing('waiting for an answer that never comes');
      setInterval(() => undefined, 1000);
    }),
  del: async () => undefined,
  check: async () => undefined,
})).then((code) => (process.exitCode = code));
