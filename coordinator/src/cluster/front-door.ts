// A TCP front door over the nodes, for trying scale-out on one machine (`npm start -- --nodes
// 3`) and for the fault tests: each new connection goes to the next node in turn, skipping
// one that refuses. It carries WebSocket and HTTP alike, byte for byte. Clients use WebSocket
// only (shared/src/federation/client.ts), so no sticky sessions are needed: a client whose
// node dies reconnects (with jittered back-off) through here and lands on a live node. In
// production the same job is a load balancer's (HAProxy, nginx, a cloud LB; docs/ARCHITECTURE.md).
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface FrontDoor {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:`port` (0: any free one) and spreads connections over `backends`. */
export function startFrontDoor(
  backends: readonly { host: string; port: number }[],
  port = 0,
): Promise<FrontDoor> {
  if (backends.length === 0) throw new Error('a front door needs at least one node behind it');
  let next = 0;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const attempt = (tried: number) => {
      if (tried >= backends.length) return client.destroy();
      const backend = backends[next++ % backends.length]!;
      const upstream = connect(backend.port, backend.host);
      upstream.once('error', () => {
        upstream.destroy();
        // Refused before anything was forwarded: this node is down, try the next.
        if (!upstream.bytesWritten) attempt(tried + 1);
        else client.destroy();
      });
      upstream.once('connect', () => {
        open.add(upstream);
        upstream.on('close', () => {
          open.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : port;
      resolve({
        url: `http://127.0.0.1:${bound}`,
        port: bound,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of open) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
