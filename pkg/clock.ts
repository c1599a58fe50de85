// Milliseconds since the process started. performance.now() would do, but its first use loads perf_hooks,
// about 2 ms of every call's start-up; process.uptime() reads the same monotonic clock.
export const nowMs = (): number => process.uptime() * 1000;
