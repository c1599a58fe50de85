// The BGP agent's BIRD: started with the config it is given, told to reload it (`configure` on its control
// socket) when it changes, restarted after a backoff when it dies, stopped with the agent. A BIRD left running by
// an agent that was killed is shut down first (`down`): two speakers with one address would fight for sessions.
import * as path from 'path';
import { startDaemon, type Daemon } from '../exec';
import { makeDirs } from '../files';
import { writeFileAtomic } from '../rundir';
import { birdCommand } from './bird';

export interface BirdOptions {
  bird: string;
  confFile: string;
  socket: string;
  log: (line: string) => void;
  /** between a death and the next start, doubling from min to max */
  restartMs?: { min: number; max: number };
}

export interface BirdSupervisor {
  /** write the config and make BIRD run it: started when not running, reconfigured otherwise */
  apply(config: string): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function superviseBird(o: BirdOptions): BirdSupervisor {
  const { min, max } = o.restartMs ?? { min: 1000, max: 30000 };
  let daemon: Daemon | undefined;
  let stopping = false;
  let delay = min;
  let restartTimer: NodeJS.Timeout | undefined;

  const start = () => {
    restartTimer = undefined;
    // -R: graceful restart recovery, so a BIRD started after a crash keeps the kernel routes of the last one
    const d = startDaemon(o.bird, ['-f', '-R', '-c', o.confFile, '-s', o.socket], { onLine: (l) => l.trim() && o.log(`bird: ${l}`) });
    daemon = d;
    const startedAt = Date.now();
    void d.exited.then((how) => {
      if (daemon === d) daemon = undefined;
      if (stopping) return;
      // a BIRD that ran a while before dying starts again soon; one that dies at once backs off
      if (Date.now() - startedAt > 60_000) delay = min;
      o.log(`bird exited (${typeof how === 'number' ? `code ${how}` : how}): starting it again in ${delay / 1000}s; the routes it installed stay meanwhile`);
      restartTimer = setTimeout(start, delay);
      delay = Math.min(delay * 2, max);
    });
  };

  /** a BIRD on our socket that is not ours (its agent was killed): ask it to shut down, and wait */
  const retireOrphan = async () => {
    try {
      await birdCommand(o.socket, 'down', 2000);
    } catch {
      return; // nobody there
    }
    for (let i = 0; i < 50; i++) {
      try {
        await birdCommand(o.socket, 'show status', 500);
      } catch {
        return;
      }
      await sleep(100);
    }
  };

  return {
    async apply(config: string) {
      makeDirs(path.dirname(o.confFile), 'bgp.dir', 0o700);
      writeFileAtomic(o.confFile, config, 0o600);
      if (!daemon) {
        if (restartTimer) return; // it starts on the new config when its backoff ends
        await retireOrphan();
        start();
        return;
      }
      // a BIRD started a moment ago may not listen on its socket yet
      for (let i = 0; ; i++) {
        try {
          const reply = await birdCommand(o.socket, 'configure', 10_000);
          o.log(`bird: ${reply.map((l) => l.text).join(' ') || 'reconfigured'}`);
          return;
        } catch (e) {
          if (i >= 50 || !/not running/.test((e as Error).message)) throw e;
          await sleep(100);
        }
      }
    },
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      const d = daemon;
      d?.stop('SIGTERM');
      await d?.exited;
    },
  };
}
