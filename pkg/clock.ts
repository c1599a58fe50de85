// Milliseconds since the process started. process.uptime(), not performance.now(): the latter loads
// perf_hooks at its first use, at every call's start-up; both read the same monotonic clock.
export const nowMs = (): number => process.uptime() * 1000;
