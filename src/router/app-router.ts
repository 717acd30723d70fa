import { EventEmitter } from 'node:events';
import pg from 'pg';
import { bucketOf, type Side } from './hash';
import { getRoute, ROUTE_CHANNEL, type RouteNotice } from './store';

export interface CreateRouterOptions {
  /** Where the route lives. Give a connection string or a pool (one of its connections is then
   * held for LISTEN for the router's lifetime). */
  connectionString?: string;
  pool?: pg.Pool;
  /** The migration (plan) name whose route to follow. */
  migration: string;
  /** How often to re-read the route while the LISTEN connection is down. Default 2000 ms. */
  pollIntervalMs?: number;
  /** How often to re-read it while LISTEN works, as a safety net. Default 60 000 ms. */
  refreshIntervalMs?: number;
  /** Wait before trying to re-open a dropped LISTEN connection. Default 1000 ms. */
  reconnectDelayMs?: number;
  /**
   * Table names as before the swap; enables router.table(key). Once the swap has given the new
   * table the old name (the route row says so), table() returns `old` for every key: that name
   * now holds the data. After a swap-back it routes by percent again.
   */
  tables?: { old: string; new: string };
  /** application_name of the router's sessions. */
  applicationName?: string;
}

export interface RouteChangeEvent {
  migration: string;
  previous: number;
  percent: number;
  version: number;
  swapped: boolean;
}

export type RouterMode = 'starting' | 'listen' | 'poll' | 'closed';

export interface Router {
  /** 'new' when the key's bucket is below the current percent, else 'old'. Before ready(): 'old'. */
  target(key: string | number): Side;
  /** The table that holds the key's data (needs the `tables` option); see `tables`. */
  table(key: string | number): string;
  /** The current percent of keys routed to new. */
  readonly percent: number;
  /** True while the swap has given the new table the original name. */
  readonly swapped: boolean;
  /** Version of the route as last read (0 when no route was ever set). */
  readonly version: number;
  /** 'listen' while changes arrive by NOTIFY, 'poll' while falling back to polling. */
  readonly mode: RouterMode;
  /** Resolves after the first read of the route (rejects when that read fails). */
  ready(): Promise<void>;
  on(event: 'change', fn: (e: RouteChangeEvent) => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: 'mode', fn: (mode: RouterMode) => void): this;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: string, fn: (...args: any[]) => void): this;
  /** Stops listening and polling and releases connections. */
  close(): Promise<void>;
}

type ListenConn = { client: pg.Client | pg.PoolClient; release: (err?: Error) => void };

class PgRouter extends EventEmitter implements Router {
  private _percent = 0;
  private _swapped = false;
  private _version = -1;
  private _mode: RouterMode = 'starting';
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private listenConn: ListenConn | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly readyPromise: Promise<void>;
  private closed = false;

  constructor(private readonly opts: CreateRouterOptions) {
    super();
    if (!opts.migration) throw new Error('createRouter: migration is required');
    if (!opts.pool && !opts.connectionString) {
      throw new Error('createRouter: give connectionString or pool');
    }
    this.ownsPool = !opts.pool;
    this.pool =
      opts.pool ??
      new pg.Pool({
        connectionString: opts.connectionString,
        max: 2,
        application_name: this.appName('poll'),
      });
    if (this.ownsPool) this.pool.on('error', (err) => this.reportError(err));
    this.readyPromise = this.start();
    // ready() is the caller's way to see a failure; don't also crash the process on it.
    this.readyPromise.catch(() => {});
  }

  get percent(): number {
    return this._percent;
  }
  get swapped(): boolean {
    return this._swapped;
  }
  get version(): number {
    return Math.max(this._version, 0);
  }
  get mode(): RouterMode {
    return this._mode;
  }

  target(key: string | number): Side {
    return bucketOf(this.opts.migration, key) < this._percent ? 'new' : 'old';
  }

  table(key: string | number): string {
    if (!this.opts.tables) throw new Error('router.table() needs the `tables` option');
    // The swap renames the new table to the old name: every key's data is under that name now.
    return this._swapped ? this.opts.tables.old : this.opts.tables[this.target(key)];
  }

  ready(): Promise<void> {
    return this.readyPromise;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.reconnectTimer);
    this.dropListen();
    this.setMode('closed');
    if (this.ownsPool) await this.pool.end();
  }

  private appName(role: string): string {
    return `${this.opts.applicationName ?? 'cutover-router'}-${role}`;
  }

  private async start(): Promise<void> {
    // LISTEN first, then read: a change committed between the two is then either in the read
    // or in a notification (or both; versions make applying twice harmless).
    try {
      await this.openListen();
    } catch (err) {
      this.reportError(err as Error);
      this.fallBackToPolling();
    }
    try {
      await this.refresh();
    } finally {
      // Even when the first read fails, keep trying: the database may come up later.
      this.schedule();
    }
  }

  private async openListen(): Promise<void> {
    const conn = await this.connectDedicated();
    if (this.closed) {
      conn.release();
      return;
    }
    const onLost = (err?: Error) => {
      if (this.listenConn !== conn) return;
      this.listenConn = undefined;
      conn.release(err ?? new Error('LISTEN connection ended'));
      if (err) this.reportError(err);
      if (!this.closed) this.fallBackToPolling();
    };
    conn.client.on('error', (err) => onLost(err));
    conn.client.on('end', () => onLost());
    conn.client.on('notification', (msg) => {
      if (msg.channel !== ROUTE_CHANNEL || !msg.payload) return;
      let notice: RouteNotice;
      try {
        notice = JSON.parse(msg.payload) as RouteNotice;
      } catch {
        return;
      }
      if (notice.migration === this.opts.migration)
        this.apply(notice.percent, notice.version, notice.swapped === true);
    });
    this.listenConn = conn;
    await conn.client.query(`LISTEN ${ROUTE_CHANNEL}`);
    this.setMode('listen');
  }

  private async connectDedicated(): Promise<ListenConn> {
    if (this.opts.pool) {
      const client = await this.opts.pool.connect();
      return { client, release: (err) => client.release(err ?? true) };
    }
    const client = new pg.Client({
      connectionString: this.opts.connectionString,
      application_name: this.appName('listen'),
      keepAlive: true,
    });
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => {});
      throw err;
    }
    return { client, release: () => void client.end().catch(() => {}) };
  }

  private dropListen(): void {
    const conn = this.listenConn;
    this.listenConn = undefined;
    conn?.release();
  }

  private fallBackToPolling(): void {
    this.setMode('poll');
    this.schedule();
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(
      () => void this.reconnect(),
      this.opts.reconnectDelayMs ?? 1000,
    );
  }

  private async reconnect(): Promise<void> {
    if (this.closed || this.listenConn) return;
    try {
      await this.openListen();
      // Anything announced while we were deaf is picked up by this read.
      await this.refresh();
      this.schedule();
    } catch (err) {
      this.dropListen();
      this.reportError(err as Error);
      if (!this.closed) this.fallBackToPolling();
    }
  }

  /** (Re)arms the read timer at the interval the current mode calls for. */
  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const every =
      this._mode === 'listen'
        ? (this.opts.refreshIntervalMs ?? 60_000)
        : (this.opts.pollIntervalMs ?? 2000);
    this.timer = setTimeout(() => {
      this.refresh()
        .catch((err: Error) => this.reportError(err))
        .finally(() => this.schedule());
    }, every);
    this.timer.unref?.();
  }

  private async refresh(): Promise<void> {
    const route = await getRoute(this.pool, this.opts.migration);
    if (route) this.apply(route.percent, route.version, route.swapped);
    else this.apply(0, 0, false);
  }

  private apply(percent: number, version: number, swapped: boolean): void {
    // Notifications and reads can arrive out of order; the version says which is newer.
    if (version <= this._version) return;
    const previous = this._percent;
    const wasSwapped = this._swapped;
    this._percent = percent;
    this._swapped = swapped;
    this._version = version;
    if (previous !== percent || wasSwapped !== swapped) {
      this.emit('change', { migration: this.opts.migration, previous, percent, version, swapped });
    }
  }

  private setMode(mode: RouterMode): void {
    if (this._mode === mode) return;
    this._mode = mode;
    this.emit('mode', mode);
  }

  private reportError(err: Error): void {
    // An EventEmitter throws on 'error' without listeners; a router must never crash its app.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}

/**
 * Follows a migration's route from PostgreSQL and decides, per key, whether the application
 * should use the old or the new table. See docs/routing.md.
 */
export function createRouter(opts: CreateRouterOptions): Router {
  return new PgRouter(opts);
}
