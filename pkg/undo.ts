// What a call has done, to take back if it fails: each side effect records how to undo it the moment it has
// succeeded, as the reference plugins `defer` a cleanup at each step. Undone last first; an undo that fails
// does not keep the others from running.
export class Undo {
  private readonly steps: Array<() => Promise<unknown>> = [];

  /** Remember how to take back something that has just happened. */
  push(undo: () => Promise<unknown>): void {
    this.steps.push(undo);
  }

  /** Run `step`; once it succeeded, remember `undo` (given its value). */
  async do<T>(step: () => Promise<T>, undo: (value: T) => Promise<unknown>): Promise<T> {
    const v = await step();
    this.push(() => undo(v));
    return v;
  }

  /** Take everything back, newest first. */
  async run(): Promise<void> {
    for (const undo of this.steps.splice(0).reverse()) await undo().catch(() => undefined);
  }
}
