// A one-line progress bar on a TTY; plain lines elsewhere (logs, CI), nothing with --json.
export function progressPrinter(enabled: boolean): (p: { fraction: number; stage: string; message?: string }) => void {
  const tty = process.stderr.isTTY === true;
  return (p) => {
    if (!enabled) return;
    if (tty) {
      const w = 28;
      const filled = Math.round(p.fraction * w);
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${(p.fraction * 100).toFixed(0).padStart(3)}% ${p.stage} ${(p.message ?? '').slice(0, 70).padEnd(70)}`,
      );
      if (p.stage === 'done') process.stderr.write('\n');
    } else if (p.stage === 'measured' || p.stage === 'done') {
      process.stderr.write(`edgefit: ${p.stage}${p.message ? ` ${p.message}` : ''}\n`);
    }
  };
}
