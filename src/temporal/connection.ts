import { readFileSync } from 'node:fs';
import { Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { UserError } from '../errors';

/**
 * Where Temporal is, from the environment only (credentials never go on a command line):
 *   TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE (default "default"),
 *   TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY (mTLS client pair, file paths), TEMPORAL_TLS_CA,
 *   TEMPORAL_TLS=true (server TLS without a client pair), TEMPORAL_API_KEY (Temporal Cloud).
 */
export interface TemporalSettings {
  address: string;
  namespace: string;
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer } | true;
  apiKey?: string;
}

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const read = (name: string) => {
    const path = env[name];
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UserError(`${name}=${path}: cannot read the file (${(err as Error).message})`);
    }
  };
  const crt = read('TEMPORAL_TLS_CERT');
  const key = read('TEMPORAL_TLS_KEY');
  if (Boolean(crt) !== Boolean(key))
    throw new UserError('set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY, or neither');
  const ca = read('TEMPORAL_TLS_CA');
  const apiKey = env.TEMPORAL_API_KEY || undefined;
  const wantsTls = crt || ca || env.TEMPORAL_TLS === 'true' || apiKey;
  return {
    address: env.TEMPORAL_ADDRESS || 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    tls: wantsTls
      ? crt || ca
        ? { clientCertPair: crt && key ? { crt, key } : undefined, serverRootCACertificate: ca }
        : true
      : undefined,
    apiKey,
  };
}

function unreachable(s: TemporalSettings, err: unknown): UserError {
  return new UserError(
    `cannot reach Temporal at ${s.address} (namespace ${s.namespace}): ${(err as Error).message}. ` +
      'Start one with `cutover dev`, or set TEMPORAL_ADDRESS',
  );
}

export async function connectClient(s = temporalSettings()): Promise<Connection> {
  const options: ConnectionOptions = {
    address: s.address,
    tls: s.tls,
    apiKey: s.apiKey,
    connectTimeout: '5s',
  };
  try {
    return await Connection.connect(options);
  } catch (err) {
    throw unreachable(s, err);
  }
}

export async function connectWorker(s = temporalSettings()): Promise<NativeConnection> {
  const options: NativeConnectionOptions = { address: s.address, tls: s.tls, apiKey: s.apiKey };
  try {
    return await NativeConnection.connect(options);
  } catch (err) {
    throw unreachable(s, err);
  }
}
