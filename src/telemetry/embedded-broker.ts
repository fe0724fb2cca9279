// The zero-setup default: with no broker configured the agent runs aedes in-process on
// loopback, so `npm start` on a fresh clone works end to end.
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { guardStream } from './packet-guard.js';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error): void => {
      server.off('listening', onOk);
      reject(e);
    };
    const onOk = (): void => {
      server.off('error', onErr);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    };
    server.once('error', onErr);
    server.once('listening', onOk);
    server.listen(port, host);
  });
}

/**
 * Start aedes on host:port; when the port is taken, on a free port instead (log says which).
 * aedes has no packet-size limit of its own and runs inside the agent: a client's packet over
 * `maxPacketBytes` closes that client's connection at its header, before anything is buffered.
 */
export async function startEmbeddedBroker(
  host: string,
  port: number,
  log: (line: string) => void,
  maxPacketBytes = Number.POSITIVE_INFINITY,
): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  const server = createServer((socket) =>
    broker.handle(
      Number.isFinite(maxPacketBytes) ? guardStream(socket, { mode: 'close', maxBytes: maxPacketBytes, protocolVersion: () => 4 }) : socket,
    ),
  );
  let bound: number;
  try {
    bound = await listen(server, host, port);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    bound = await listen(server, host, 0);
    log(`embedded MQTT broker: port ${port} is busy, using ${bound} instead`);
  }
  log(`embedded MQTT broker (aedes) listening on mqtt://${host}:${bound}`);
  return {
    url: `mqtt://${host}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        broker.close(() => server.close(() => resolve()));
        // close() waits for clients to go; do not hang shutdown on a stuck one
        setTimeout(resolve, 1000).unref();
      }),
  };
}
