// Reconnect delays: exponential growth with "equal jitter" (half fixed, half random), so that many
// widgets dropped at once by a restarting server do not come back in lockstep.

/** The delay before reconnect attempt `attempt` (0 = first), in milliseconds. */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 15000 } = {}, random = Math.random) {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  const ceiling = Math.min(maxMs, initialMs * 2 ** exponent);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
