// Prints what processIO().readStdin() read, as JSON (skel.test.ts runs this as a real process: the read is of
// fd 0 itself, a pipe, a terminal or a non-blocking pipe).
import { processIO } from '../skel';

processIO()
  .readStdin()
  .then((b) => process.stdout.write(JSON.stringify({ text: b.toString() }) + '\n'))
  .catch((e: Error) => process.stdout.write(JSON.stringify({ error: e.message }) + '\n'));
