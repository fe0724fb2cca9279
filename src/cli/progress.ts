// A one-line progress bar on a TTY; plain lines elsewhere (logs, CI), nothing with --json.
export function progressPrinter(enabled: boolean): (p: { fraction: number; stage: string; message?: string; etaS?: number }) => void {
  const tty = process.stderr.isTTY === true;
  let lastTraining = 0;
  return (p) => {
    if (!enabled) return;
    const eta = p.etaS !== undefined && p.stage !== 'done' ? ` (about ${formatEta(p.etaS)} left)` : '';
    if (tty) {
      const w = 28;
      const filled = Math.round(p.fraction * w);
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${(p.fraction * 100).toFixed(0).padStart(3)}%${eta} ${p.stage} ${(p.message ?? '').slice(0, 70).padEnd(70)}`,
      );
      if (p.stage === 'done') process.stderr.write('\n');
    } else if (p.stage === 'training') {
      // a line per step would flood a log: the loss every 10 s is the curve's outline
      if (Date.now() - lastTraining < 10_000) return;
      lastTraining = Date.now();
      process.stderr.write(`edgefit: training ${p.message ?? ''}${eta}\n`);
    } else if (p.stage === 'measured' || p.stage === 'done' || p.stage === 'latency tables') {
      process.stderr.write(`edgefit: ${p.stage}${p.message ? ` ${p.message}` : ''}${eta}\n`);
    }
  };
}

/** 75 -> '1 min 15 s', 8 -> '8 s'. */
export function formatEta(s: number): string {
  const r = Math.max(0, Math.round(s));
  return r >= 60 ? `${Math.floor(r / 60)} min ${r % 60} s` : `${r} s`;
}
