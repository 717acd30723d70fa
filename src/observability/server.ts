import { createServer, type Server } from 'node:http';
import { registry } from './metrics';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics: cutover's metrics followed by Temporal's runtime metrics, which the
 * Runtime exports on its own internal address (`temporalUrl`) and this server passes through,
 * so one scrape target has both.
 */
export async function startMetricsServer(
  port: number,
  options: { host?: string; temporalUrl?: string } = {},
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('see /metrics\n');
      return;
    }
    void (async () => {
      try {
        let text = await registry.metrics();
        if (options.temporalUrl) {
          const temporal = await fetch(options.temporalUrl, { signal: AbortSignal.timeout(5000) })
            .then((r) => (r.ok ? r.text() : ''))
            .catch(() => '');
          text += `\n${temporal}`;
        }
        res.writeHead(200, { 'content-type': registry.contentType }).end(text);
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, options.host ?? '0.0.0.0', resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
