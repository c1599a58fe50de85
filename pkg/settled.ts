// Independent steps of a plugin call run together, so their spawns and the kernel's waits overlap.

/**
 * Independent steps run together (their spawns and the kernel's waits overlap): wait for every one, so a
 * rollback never races a step still running, then throw the first failure.
 */
export async function settled<T extends readonly unknown[]>(steps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const res = await Promise.allSettled(steps);
  const failed = res.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return res.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
