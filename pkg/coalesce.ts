// For agents: a reconcile asked for while one runs is not run beside it, nor dropped: it runs once more after.

/** `f` made safe to call at any time: never two at once, and calls during a run fold into one more run. */
export function coalesced(f: () => Promise<void>): () => Promise<void> {
  let running = false;
  let again = false;
  return async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await f();
      } while (again);
    } finally {
      running = false;
    }
  };
}
