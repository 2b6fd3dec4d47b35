/** Numbers the failover tests print, so each CI run shows how a failover went. */

/**
 * The one-line summary a failover test prints (a TAP `#` line, so it shows in CI output):
 * events published (accepted by the admin API), received, delivered twice, and missing
 * (published, not received, and older than the last one received).
 */
export function failoverSummary(name: string, published: Set<number>, received: number[], recovered: boolean): string {
  const seen = new Set(received);
  const duplicates = received.length - seen.size;
  const last = Math.max(...received);
  const gap = [...published].filter((n) => n <= last && !seen.has(n)).length;
  return `failover(${name}): published ${published.size}, received ${received.length}, duplicates ${duplicates}, gap ${gap}, recovered=${recovered}`;
}
