// The fit child (forked by childFitter): runs src/fit's fitModel away from the agent process, so
// the pruning, quantization and calibration code and onnxruntime are never loaded into the
// long-running agent, and the memory a search needs is returned to the box when it ends.
// Protocol: one { t: 'fit' } in, then any { t: 'hold', on } (train-hold.ts); { t: 'progress' }* then
// one { t: 'done' } or { t: 'error' } out, and { t: 'parked' } once per hold when the training has
// stopped at its gate.
import { setPriority } from 'node:os';
import { ERROR_CODES } from '../errors.js';
import { trainedCandidates, type FitProgress, type FitRequest, type FitResult } from '../fit/types.js';
import { TrainGate } from './train-hold.js';

export type FitChildMessage =
  | { t: 'progress'; p: FitProgress }
  | { t: 'done'; result: FitResult }
  | { t: 'error'; code: string; message: string }
  | { t: 'parked'; seq: number };

/** The number of the hold last received: the word that training parked names it. */
let holdSeq = 0;
const gate = new TrainGate(() => void send({ t: 'parked', seq: holdSeq }));

const send = (m: FitChildMessage): Promise<void> => new Promise((r) => process.send!(m, undefined, undefined, () => r()));

async function fit(raw: unknown): Promise<FitChildMessage> {
  const m = raw as { t?: unknown; req?: FitRequest; hardwareId?: unknown; maxCandidates?: unknown };
  if (m?.t !== 'fit' || typeof m.req?.modelPath !== 'string' || typeof m.hardwareId !== 'string')
    return { t: 'error', code: 'INTERNAL', message: 'bad fit request' };
  // a training fit runs for minutes on every core: below the box's applications (and the agent)
  if ((m.req.trainMinutes ?? 0) > 0) {
    try {
      setPriority(10);
    } catch {
      // not permitted (some containers): run at normal priority
    }
  }
  const { fitModel } = await import('../fit/index.js');
  let last = 0;
  const out = await fitModel(
    m.req,
    (p) => {
      // the agent throttles what it reports; this only spares the IPC channel
      if (Date.now() - last < 250 && p.fraction < 1) return;
      last = Date.now();
      void send({
        t: 'progress',
        p: {
          fraction: p.fraction,
          stage: p.stage,
          ...(p.message ? { message: p.message } : {}),
          ...(p.etaS !== undefined ? { etaS: p.etaS } : {}),
        },
      });
    },
    {
      hardwareId: m.hardwareId,
      trainGate: gate.wait,
      ...(typeof m.maxCandidates === 'number' ? { maxCandidates: m.maxCandidates } : {}),
    },
  );
  const result: FitResult = {
    chosenId: out.chosenId,
    frontier: out.frontier,
    referenceLatencyP50Ms: out.referenceLatencyP50Ms,
    fitter: 'fitModel',
  };
  if (out.shortfall) result.shortfall = out.shortfall;
  // what fidelity was judged for: the agent stores it with the fit and shows it with every figure
  if (out.task) result.task = out.task;
  if (out.fidelityMetric) result.fidelityMetric = out.fidelityMetric;
  result.cacheHits = out.cacheHits;
  const trained = trainedCandidates(out.candidates);
  if (trained.length) result.trained = trained;
  return { t: 'done', result };
}

process.on('disconnect', () => process.exit(0));
let started = false;
process.on('message', (raw: unknown) => {
  const h = raw as { t?: unknown; on?: unknown; seq?: unknown };
  if (h?.t === 'hold') {
    holdSeq = typeof h.seq === 'number' ? h.seq : 0;
    return gate.set(h.on === true);
  }
  if (started) return;
  started = true;
  fit(raw)
    .catch((e: unknown): FitChildMessage => {
      const code = (e as { code?: unknown }).code;
      return {
        t: 'error',
        code: typeof code === 'string' && code in ERROR_CODES ? code : 'INTERNAL',
        message: e instanceof Error ? e.message : String(e),
      };
    })
    .then(async (reply) => {
      await send(reply);
      process.exit(0);
    });
});
