// Commands arriving on request/<verb>: parse, validate, verify the signature, dispatch, and
// answer on response/<verb> echoing the txn. Anything wrong gets an error response; nothing a
// command carries is ever used as a file path.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgefitError, isEdgefitError, oneLine } from '../errors.js';
import type { Budgets } from '../fit/types.js';
import { PAYLOAD_VERSION, type DeployArgs, type PublicFrontierEntry, type ResponsePayload } from '../telemetry/payloads.js';
import { verifyModelSignature, verifyRequest, type SigningConfig } from '../telemetry/signing.js';
import { isVerb, type Verb } from '../telemetry/topics.js';
import { checkArgs, checkPayload } from '../telemetry/validate.js';
import type { Agent } from './agent.js';
import { LatencyProbe } from './latency.js';
import { sha256Hex } from './model-store.js';

const MAX_REQUEST_BYTES = 96 * 1024 * 1024;

export class CommandHandler {
  constructor(private readonly agent: Agent, private readonly signing: SigningConfig) {}

  async handle(verbRaw: string, payload: Buffer): Promise<void> {
    const verb = /^[A-Za-z0-9_-]{1,32}$/.test(verbRaw) ? verbRaw : 'invalid';
    let txn: string | null = null;
    try {
      if (payload.length > MAX_REQUEST_BYTES) throw new EdgefitError('DATA', `request of ${payload.length} bytes exceeds the ${MAX_REQUEST_BYTES} byte limit`);
      let body: unknown;
      try {
        body = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new EdgefitError('DATA', 'request is not valid JSON');
      }
      if (typeof body === 'object' && body !== null && typeof (body as { txn?: unknown }).txn === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test((body as { txn: string }).txn)) {
        txn = (body as { txn: string }).txn;
      }
      const req = checkPayload('request', body);
      if (!isVerb(verb)) throw new EdgefitError('USAGE', `unknown verb '${verb}'`);
      verifyRequest(this.signing, verb, req);
      const args = checkArgs(verb, req.args ?? {});
      const result = await this.dispatch(verb, args, req.txn);
      this.respond(verb, txn, { ok: true, result });
    } catch (e) {
      const code = isEdgefitError(e) ? e.code : 'INTERNAL';
      this.respond(verb, txn, { ok: false, error: { code, message: oneLine(e) } });
      this.agent.bus.report('command-rejected', `${verb} rejected: ${oneLine(e)}`, { verb, code }, txn ?? undefined);
    }
  }

  private respond(verb: string, txn: string | null, body: Pick<ResponsePayload, 'ok' | 'result' | 'error'>): void {
    const r: ResponsePayload = { v: PAYLOAD_VERSION, deviceId: this.agent.deviceId, txn, verb, ts: new Date().toISOString(), ...body };
    this.agent.client.publish(this.agent.topics.response(verb), JSON.stringify(r)).catch(() => undefined);
  }

  private async dispatch(verb: Verb, args: Record<string, unknown>, txn: string): Promise<Record<string, unknown>> {
    const a = this.agent;
    switch (verb) {
      case 'ping':
        return { pong: true, uptimeS: a.uptimeS(), deployed: a.models.current()?.version ?? null };
      case 'fit': {
        if (args.budgets) a.setBudgets(args.budgets as Budgets);
        if (!a.ensureFit(txn, true)) throw new EdgefitError('USAGE', 'a fit is already running');
        return { accepted: true, fitKey: a.fitKey() };
      }
      case 'set-budget': {
        const before = a.fitKey();
        const budgets = a.setBudgets(args as Budgets);
        a.bus.report('budgets-changed', `budgets now ${JSON.stringify(budgets)}`, { budgets }, txn);
        a.publishProfile();
        const refit = a.fitKey() !== before && a.ensureFit(txn);
        return { budgets, refit };
      }
      case 'rollback': {
        const v = await a.rollback(txn);
        return { deployed: v.version, sha256: v.sha256 };
      }
      case 'deploy':
        return this.deploy(args as DeployArgs, txn);
      case 'get-frontier': {
        const f = a.currentFit();
        const frontier: PublicFrontierEntry[] = (f?.frontier ?? []).map(({ modelPath: _p, ...rest }) => rest);
        return { fitId: f?.fitId ?? null, chosenId: f?.fit.chosenId ?? null, deployed: a.models.current()?.candidateId ?? null, level: a.level(), frontier };
      }
    }
  }

  private async deploy(args: DeployArgs, txn: string): Promise<Record<string, unknown>> {
    const a = this.agent;
    if ('candidateId' in args) {
      const f = a.currentFit();
      const entry = f?.frontier.find((e) => e.id === args.candidateId);
      if (!f || !entry) throw new EdgefitError('USAGE', `no candidate '${args.candidateId}' on the stored frontier`);
      const v = await a.exclusive(() => a.deployEntry(f.fitId, entry, 'command', txn));
      return { deployed: v.version, candidateId: entry.id };
    }
    const maxBytes = a.cfg.security.maxModelMb * 1048576;
    if ((args.modelB64.length * 3) / 4 > maxBytes) throw new EdgefitError('DATA', `shipped model exceeds ${a.cfg.security.maxModelMb} MB`);
    const bytes = Buffer.from(args.modelB64, 'base64');
    const sha = sha256Hex(bytes);
    if (sha !== args.sha256) throw new EdgefitError('INTEGRITY', `shipped model sha256 is ${sha}, the request says ${args.sha256}`);
    if (this.signing.mode === 'ed25519') {
      if (!args.signature) throw new EdgefitError('INTEGRITY', 'shipped model is not signed and a public key is configured');
      if (!verifyModelSignature(this.signing.publicKey, bytes, args.signature)) throw new EdgefitError('INTEGRITY', 'shipped model signature does not verify');
    }
    await this.checkRuns(bytes);
    const v = await a.exclusive(() => a.deployBytes({ bytes }, { fitId: null, candidateId: null, source: 'command', expectSha256: args.sha256 }, txn));
    return { deployed: v.version, sha256: v.sha256 };
  }

  /** A shipped model must load and run on this box's input shapes before it replaces anything. */
  private async checkRuns(bytes: Uint8Array): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'edgefit-check-'));
    try {
      const p = join(dir, 'model.onnx');
      writeFileSync(p, bytes);
      // in a probe child, like every model run of the agent: a bad model cannot take it down
      await new LatencyProbe(120_000).load(p, this.agent.shapes, 1);
    } catch (e) {
      throw new EdgefitError('CORRUPT_MODEL', `shipped model does not run: ${oneLine(e)}`, { cause: e });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
