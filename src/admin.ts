import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';
/** What /metrics serves: one process's Metrics, or the primary's sum over its workers. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

/** The admin HTTP listener: `GET /metrics` (Prometheus text), `GET /healthz`; anything else 404. */
export interface AdminServer {
  address(): AddressInfo;
  close(): Promise<void>;
}

/** `healthy()`: whether the instance still accepts connections (false while shutting down: 503). */
export async function startAdmin(where: { address: string; port: number }, metrics: MetricsSource, healthy: () => boolean, logger: Logger): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (get && path === '/metrics') {
      metrics.text().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.contentType });
          res.end(text);
        },
        (err: unknown) => {
          logger.error('metrics failed', { error: err instanceof Error ? err.message : String(err) });
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n');
        },
      );
    } else if (get && path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'shutting down\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  // Scrapers keep connections alive; a close must not wait for them.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: where.address, port: where.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error('admin listener error', { error: err.message }));
  const address = () => server.address() as AddressInfo;
  logger.info('admin listening', { address: where.address, port: address().port });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
