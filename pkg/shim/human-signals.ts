// Bundled in place of human-signals by scripts/bundle.sh. Its one user here is execa, which reads
// signalsByName[signal].description for the message of a child killed by a signal. The original loads
// and builds a table of every signal with a description at the first spawn of every call; a signal's name
// is description enough for a CNI error.
import { constants } from 'os';

export interface HumanSignal {
  name: string;
  number: number;
  description: string;
}

export const signalsByName: Record<string, HumanSignal> = {};
for (const [name, number] of Object.entries(constants.signals)) signalsByName[name] = { name, number, description: name };
