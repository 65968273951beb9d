import type { TrainProgress } from '../model/training-loop.ts';

/** A one-line progress bar for training on a terminal; plain lines when not a TTY. */
export function progressBar(stream: NodeJS.WriteStream): {
  update(p: TrainProgress): void;
  done(): void;
} {
  const tty = stream.isTTY === true;
  let lastPlain = 0;
  return {
    update(p) {
      const width = 24;
      const filled = Math.round((p.step / p.totalSteps) * width);
      const line =
        `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${p.step}/${p.totalSteps} ` +
        `loss ${p.loss.toFixed(3)} ${Math.round(p.tokensPerSec)} tok/s ETA ${clock(p.etaSec)}`;
      if (tty) stream.write(`\r${line}\x1b[K`);
      else if (p.step === p.totalSteps || Date.now() - lastPlain > 5000) {
        lastPlain = Date.now();
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (tty) stream.write('\n');
    },
  };
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
