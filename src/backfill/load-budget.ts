/**
 * The load budget: the operator says how much of the application's throughput the migration
 * may cost (`maxAppSlowdown`), and the governor measures the application's side with what
 * PostgreSQL offers and spaces the copying work to stay within it. gh-ost's --max-load /
 * --critical-load are the model; the difference is the relative budget against a baseline.
 *
 * What is measured (one query per window, the xid counter at each end of a pause and 100 ms
 * into it, and a count of active backends at most every 250 ms, on the worker's own connection,
 * between batches):
 *  - write throughput: xids assigned per second (pg_current_snapshot's xmax), minus the
 *    migration's own write transactions. Real time, unlike pg_stat_database, whose counters
 *    backends flush at most once a second. Judged paired: the rate while the migration works
 *    against the rate in its pauses within the same window, times the share of time working
 *    (the baseline only when there were no pauses), times the number of cutover sessions of
 *    the same kind (parallel ranges each see only their own part). On 2 cores TPC-B's rate
 *    swings 15-20 % from one second to the next, so a window against a 1 s baseline read a
 *    15 % slowdown (± 22 %) with nothing running; paired, −1 % ± 2 %;
 *  - commit rate from pg_stat_database, for read-mostly applications that assign no xids;
 *  - active backends and lock waits from pg_stat_activity, excluding cutover's own sessions
 *    (application_name `cutover…` or this session's name);
 *  - replication lag from pg_stat_replication when replicas exist;
 *  - the latency of a probe query the plan names (p95 over recent samples).
 * The baseline is taken before the first batch and again in short pauses aligned to the wall
 * clock, so parallel ranges on any worker pause together and none measures another's load.
 * Each range subtracts only its own write transactions: another range's batches (a few per
 * second) count as application writes, a small error against an application's hundreds.
 *
 * The controller acts on a duty cycle: the share of wall time spent copying, in cycles of at
 * least MIN_CYCLE_WORK_MS of work and the pause due for it. The slowdown
 * grows about in proportion to the duty, so each window the duty is scaled by aim / slowdown
 * (aim = 80 % of the budget; ×0.8 … ×1.25 within the budget, at most halved over it), on a
 * smoothed slowdown because one window of an application's throughput is noisy. The first
 * window runs at INITIAL_DUTY. The pause after each unit of work is
 * work × (1 − duty) / duty; batches shrink with the duty, to half the configured size at most. A
 * slowdown that lasts looks the same as the application simply doing less, so after a few
 * windows over budget the baseline is taken again.
 * Over `criticalLoad` the work stops until the figure is back under.
 */
import type pg from 'pg';

export interface LoadLimits {
  /** Non-cutover backends in state 'active'. */
  activeBackends?: number;
  /** Non-cutover backends waiting on a heavyweight lock. */
  lockWaits?: number;
  /** Largest replay lag of any replica, in seconds. */
  replicationLagSeconds?: number;
  /** p95 latency of the probe query, in ms. */
  probeP95Ms?: number;
}

export interface LoadBudget {
  enabled: boolean;
  /** Largest share of the application's throughput the migration may cost (0.2 = 20 %). */
  maxAppSlowdown: number;
  /** A query that stands for the application (cheap and read-only); its latency is watched. */
  probe?: string | null;
  /** Over any of these the work slows down, as over the budget (gh-ost --max-load). */
  maxLoad?: LoadLimits;
  /** Over any of these (or this slowdown) the work pauses until back under (--critical-load). */
  criticalLoad?: LoadLimits & { appSlowdown?: number };
  /** Length of one measurement window. */
  windowMs: number;
  /** How often the baseline is taken again (0 = only before the first batch). */
  rebaselineSeconds: number;
  /** Length of one baseline pause. */
  baselineMs: number;
  /** Lowest duty cycle outside a critical pause, so the copy always moves. */
  minDuty: number;
  /**
   * Which measures judge the slowdown. xids are assigned cluster-wide, so `writes` also sees
   * other databases' writers; leave it out when another database's load must not count.
   */
  signals: LoadSignal[];
}

export type LoadSignal = 'writes' | 'commits' | 'active' | 'probe';

export const defaultLoadBudget: LoadBudget = {
  enabled: true,
  maxAppSlowdown: 0.2,
  probe: null,
  windowMs: 2000,
  rebaselineSeconds: 60,
  baselineMs: 1000,
  minDuty: 0.05,
  signals: ['writes', 'commits', 'active', 'probe'],
};

/** What the status shows: null reason = copying as fast as the work goes. */
export interface ThrottleState {
  /** Share of wall time spent working, 0..1 (0 while paused for critical load). */
  duty: number;
  /**
   * "app writes 0.62× while copying, 41 % of the time (budget 0.80×)",
   * "critical: 41 active backends ≥ 40", …
   */
  reason: string | null;
  critical: boolean;
  /** The figure behind the reason, e.g. the slowdown or the backend count. */
  figure: number | null;
  /** Latest measured slowdown of the application against its baseline, 0..1. */
  appSlowdown: number | null;
}

interface Sample {
  at: number;
  xid: number;
  xacts: number;
  active: number;
  lockWaits: number;
  lagSeconds: number | null;
  /** Sessions doing the same work as this one (parallel ranges), this one included. */
  siblings: number;
}

interface XidMark {
  at: number;
  xid: number;
}

/** The application's write transactions while the migration worked and while it paused. */
interface Paired {
  workMs: number;
  workXids: number;
  pauseMs: number;
  pauseXids: number;
}

const noPairs = (): Paired => ({ workMs: 0, workXids: 0, pauseMs: 0, pauseXids: 0 });

interface Baseline {
  xidRate: number;
  xactRate: number;
  active: number;
  probeMs: number | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The application's client backends: this database's, not cutover's own sessions. */
const APP_BACKENDS = `
  SELECT state, wait_event_type FROM pg_stat_activity
   WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
     AND datname = current_database()
     AND application_name NOT LIKE 'cutover%'
     AND application_name IS DISTINCT FROM current_setting('application_name')`;

const SAMPLE_SQL = `
  SELECT (pg_snapshot_xmax(pg_current_snapshot())::text)::float8 AS xid,
         (SELECT (xact_commit + xact_rollback)::float8 FROM pg_stat_database
           WHERE datname = current_database()) AS xacts,
         count(*) FILTER (WHERE a.state = 'active')::int AS active,
         count(*) FILTER (WHERE a.wait_event_type = 'Lock')::int AS lock_waits,
         (SELECT max(extract(epoch FROM coalesce(replay_lag, write_lag)))::float8
            FROM pg_stat_replication) AS lag,
         (SELECT count(*)::int FROM pg_stat_activity
           WHERE datname = current_database()
             AND application_name = current_setting('application_name')
             AND current_setting('application_name') LIKE 'cutover%') AS siblings
    FROM (${APP_BACKENDS}) AS a`;

const XID_SQL = `SELECT (pg_snapshot_xmax(pg_current_snapshot())::text)::float8 AS xid`;

/** The application's active backends alone, sampled between batches. */
const ACTIVE_SQL = `SELECT count(*)::int AS active FROM (${APP_BACKENDS}) AS a WHERE a.state = 'active'`;

/**
 * Active backends are sampled at most this often between batches. Two samples per window (its
 * ends) made the Little's-law estimate jump by a quarter or more on one sample's noise with a
 * handful of application connections, and each jump halved the copy's duty cycle.
 */
const ACTIVE_SAMPLE_MS = 250;

/** Pauses come after at least this much work (the pause due for all of it at once). */
const MIN_CYCLE_WORK_MS = 200;

/** The first moments of a pause, counted as work. */
const WORK_TAIL_MS = 100;

/** Work and pause must each last this long in a window for the paired estimate. */
const MIN_PAIRED_MS = 100;

/** Application rates below this (per second) are too thin to judge a slowdown from. */
const MIN_RATE = 5;

const ratio = (n: number) => `${n.toFixed(2)}×`;

export interface GovernorOptions {
  isCancelled?: () => boolean;
  /** Called at least every second while the governor holds the work (pause, baseline). */
  onHold?: (state: ThrottleState) => void | Promise<void>;
  /** Overrides the clock (tests). */
  now?: () => number;
}

/**
 * The duty cycle of the first window. Starting at full speed overshot the budget for the first
 * few windows of every start and resume (measured: TPC-B at 0.54× of its throughput for the
 * first 2 s, then halving per window); starting low and growing by a quarter per window under
 * budget reaches full speed in about five windows when the application has room.
 */
export const INITIAL_DUTY = 0.25;

export class LoadGovernor {
  private duty = INITIAL_DUTY;
  private reason: string | null = null;
  private figure: number | null = null;
  private critical = false;
  private slowdown: number | null = null;
  private smoothed: number | null = null;
  private overWindows = 0;
  private baseline: Baseline | null = null;
  private windowStart: Sample | null = null;
  private ownWrites = 0;
  private ownXacts = 0;
  private probeTimes: number[] = [];
  private activeSamples: number[] = [];
  private lastActiveAt = 0;
  private lastBaselinePeriod = -1;
  /** The write-transaction counter when the last pause ended (the work since then is ours). */
  private resumed: XidMark | null = null;
  private paired = noPairs();
  private owedPauseMs = 0;
  private workSincePause = 0;
  private readonly now: () => number;

  constructor(
    private readonly client: pg.ClientBase,
    readonly budget: LoadBudget,
    private readonly opts: GovernorOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  get state(): ThrottleState {
    return {
      duty: this.critical ? 0 : Number(this.duty.toFixed(3)),
      reason: this.reason,
      critical: this.critical,
      figure: this.figure,
      appSlowdown: this.slowdown === null ? null : Number(this.slowdown.toFixed(3)),
    };
  }

  /**
   * Share of the configured batch size to use now: somewhat smaller bursts at a low duty, but
   * never below half. Each batch has a fixed cost (a probe, a commit, round trips) that buys no
   * rows, and at a low duty it came out of the little copying time there was (at duty 0.1 the
   * batches were a fifth of the configured size, so that cost weighed five times as much).
   */
  get batchScale(): number {
    return Math.min(1, 0.5 + this.duty);
  }

  private cancelled() {
    return Boolean(this.opts.isCancelled?.());
  }

  private async sample(): Promise<Sample> {
    const r = await this.client.query<{
      xid: number;
      xacts: number | null;
      active: number;
      lock_waits: number;
      lag: number | null;
      siblings: number;
    }>(SAMPLE_SQL);
    this.ownXacts++;
    const row = r.rows[0]!;
    return {
      at: this.now(),
      xid: row.xid,
      xacts: row.xacts ?? 0,
      active: row.active,
      lockWaits: row.lock_waits,
      lagSeconds: row.lag,
      siblings: Math.max(1, row.siblings),
    };
  }

  private async probe(): Promise<number | null> {
    if (!this.budget.probe) return null;
    const t0 = performance.now();
    await this.client.query(this.budget.probe);
    this.ownXacts++;
    const ms = performance.now() - t0;
    this.probeTimes.push(ms);
    if (this.probeTimes.length > 20) this.probeTimes.shift();
    return ms;
  }

  private probeQuantile(q: number, last = this.probeTimes.length): number | null {
    if (!this.probeTimes.length) return null;
    const s = this.probeTimes.slice(-last).sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
  }

  private probeP95(): number | null {
    return this.probeQuantile(0.95);
  }

  /**
   * Samples the application's active backends, at most every ACTIVE_SAMPLE_MS, after batches
   * and during the pauses between them, so the window's mean is a mean over time, not over the
   * moments just after a burst.
   */
  private async sampleActive() {
    if (
      !this.budget.signals.includes('active') ||
      this.now() - this.lastActiveAt < ACTIVE_SAMPLE_MS
    )
      return;
    this.lastActiveAt = this.now();
    const r = await this.client.query<{ active: number }>(ACTIVE_SQL);
    this.ownXacts++;
    this.activeSamples.push(r.rows[0]!.active);
  }

  /** Sleeps `ms` in short steps, telling onHold and sampling active backends, unless cancelled. */
  private async hold(ms: number, sampling = true) {
    const until = this.now() + ms;
    let lastHold = this.now();
    while (this.now() < until && !this.cancelled()) {
      if (this.opts.onHold && this.now() - lastHold >= 1000) {
        lastHold = this.now();
        await this.opts.onHold(this.state);
      }
      await sleep(Math.max(1, Math.min(100, until - this.now())));
      if (sampling) await this.sampleActive();
    }
  }

  /** Measures the application with the migration's work stopped. */
  private async takeBaseline() {
    const a = await this.sample();
    const probes: number[] = [];
    const actives: number[] = [a.active];
    const steps = 4;
    for (let i = 0; i < steps && !this.cancelled(); i++) {
      // Its own samples only: its commit rate counts exactly the sample queries it made.
      await this.hold(this.budget.baselineMs / steps, false);
      const p = await this.probe();
      if (p !== null) probes.push(p);
      if (i < steps - 1) actives.push((await this.sample()).active);
    }
    const b = await this.sample();
    actives.push(b.active);
    const secs = Math.max(0.001, (b.at - a.at) / 1000);
    probes.sort((x, y) => x - y);
    this.baseline = {
      // The sample queries themselves are read-only: they assign no xid.
      xidRate: (b.xid - a.xid) / secs,
      xactRate: Math.max(0, b.xacts - a.xacts - (steps + 1)) / secs,
      active: actives.reduce((x, y) => x + y, 0) / actives.length,
      probeMs: probes.length ? probes[Math.floor(probes.length / 2)]! : null,
    };
    this.windowStart = b;
    this.smoothed = null;
    this.overWindows = 0;
    this.ownWrites = 0;
    this.ownXacts = 0;
    this.activeSamples = [];
    this.paired = noPairs();
  }

  /** Before the first unit of work: the first baseline. */
  async start(): Promise<void> {
    if (!this.budget.enabled) return;
    this.lastBaselinePeriod = this.period();
    await this.takeBaseline();
  }

  private period() {
    const s = this.budget.rebaselineSeconds;
    return s > 0 ? Math.floor(this.now() / (s * 1000)) : 0;
  }

  private overLimits(s: Sample, limits: LoadLimits | undefined): [string, number] | null {
    if (!limits) return null;
    if (limits.activeBackends !== undefined && s.active >= limits.activeBackends)
      return [`${s.active} active backends ≥ ${limits.activeBackends}`, s.active];
    if (limits.lockWaits !== undefined && s.lockWaits >= limits.lockWaits)
      return [`${s.lockWaits} lock waits ≥ ${limits.lockWaits}`, s.lockWaits];
    if (
      limits.replicationLagSeconds !== undefined &&
      s.lagSeconds !== null &&
      s.lagSeconds >= limits.replicationLagSeconds
    )
      return [
        `replication lag ${s.lagSeconds.toFixed(1)} s ≥ ${limits.replicationLagSeconds} s`,
        s.lagSeconds,
      ];
    const p95 = this.probeP95();
    if (limits.probeP95Ms !== undefined && p95 !== null && p95 >= limits.probeP95Ms)
      return [`probe p95 ${p95.toFixed(0)} ms ≥ ${limits.probeP95Ms} ms`, p95];
    return null;
  }

  /**
   * The application's write rate while the migration worked against its rate in the pauses
   * between, both within this window, times the share of time spent working. The two interleave
   * every few hundred milliseconds, so the application's own swings over seconds (a 1 s baseline
   * of TPC-B on 2 cores was off by 15-20 %, and every window until the next baseline inherited
   * that) fall on both sides alike.
   */
  private pairedSlowdown(siblings: number): [number, string] | null {
    const p = this.paired;
    if (p.pauseMs < MIN_PAIRED_MS || p.workMs < MIN_PAIRED_MS) return null;
    const pauseRate = (p.pauseXids / p.pauseMs) * 1000;
    if (pauseRate < MIN_RATE) return null;
    const workRate = (p.workXids / p.workMs) * 1000;
    const share = p.workMs / (p.workMs + p.pauseMs);
    // Parallel ranges pause independently, so each one's pauses hold the others' work as often
    // as its working time does: each sees only its own share of the slowdown. Alike, they add up.
    const shared = siblings > 1 ? `, ${siblings} ranges alike` : '';
    return [
      (1 - workRate / pauseRate) * share * siblings,
      `app writes ${ratio(workRate / pauseRate)} while copying, ${Math.round(share * 100)} % of the time${shared}`,
    ];
  }

  /** The application's slowdown over the window against the baseline, and what showed it. */
  private measureSlowdown(a: Sample, b: Sample): [number, string] | null {
    const base = this.baseline;
    if (!base) return null;
    const secs = Math.max(0.001, (b.at - a.at) / 1000);
    const found: [number, string][] = [];
    const use = new Set(this.budget.signals);
    const paired = this.pairedSlowdown(b.siblings);
    if (use.has('writes') && paired) {
      found.push(paired);
    } else if (use.has('writes') && base.xidRate >= MIN_RATE) {
      const rate = Math.max(0, b.xid - a.xid - this.ownWrites) / secs;
      found.push([1 - rate / base.xidRate, `app writes ${ratio(rate / base.xidRate)} baseline`]);
    } else if (use.has('commits') && base.xactRate >= MIN_RATE && secs >= 2) {
      // pg_stat_database counters move in steps of about a second: judge longer windows only.
      const rate = Math.max(0, b.xacts - a.xacts - this.ownXacts) / secs;
      found.push([1 - rate / base.xactRate, `app commits ${ratio(rate / base.xactRate)} baseline`]);
    }
    // Typical latency against the baseline's median: a p95 of a few samples is one hiccup.
    const typical = this.probeQuantile(0.5, 5);
    if (use.has('probe') && base.probeMs !== null && typical !== null && typical > 0)
      found.push([
        1 - base.probeMs / typical,
        `probe ${typical.toFixed(1)} ms vs ${base.probeMs.toFixed(1)} ms`,
      ]);
    if (use.has('active') && this.activeSamples.length && base.active >= 1) {
      // Little's law: at a steady arrival rate, backends busy ∝ latency.
      const active = this.activeSamples.reduce((x, y) => x + y, 0) / this.activeSamples.length;
      if (active - base.active >= 1)
        found.push([
          1 - base.active / active,
          `${active.toFixed(1)} active backends vs ${base.active.toFixed(1)}`,
        ]);
    }
    if (!found.length) return null;
    return found.reduce((w, f) => (f[0] > w[0] ? f : w));
  }

  /**
   * After a unit of work that took `workMs` and committed `writes` write transactions: judges
   * the window when it is over, then waits as long as the duty cycle (or a critical pause, or
   * a baseline pause) demands. Returns once the next unit may start.
   */
  async afterWork(workMs: number, writes: number, reads = 0): Promise<void> {
    if (!this.budget.enabled) return;
    if (!this.baseline) {
      // Governed only from now on (the operator switched the budget back on): measure first.
      this.lastBaselinePeriod = this.period();
      await this.takeBaseline();
      return;
    }
    this.ownWrites += writes;
    this.ownXacts += writes + reads;
    const workEnd = await this.markXid();
    // Cycles of work without a pause are one work interval.
    if (this.resumed) {
      this.paired.workMs += workEnd.at - this.resumed.at;
      this.paired.workXids += Math.max(0, workEnd.xid - this.resumed.xid - writes);
    }
    this.resumed = null;
    await this.sampleActive();
    const start = this.windowStart;
    if (!start || this.now() - start.at >= this.budget.windowMs) await this.judge();
    if (this.critical) {
      // A pause for critical load is no measure of the application without the migration.
      await this.holdWhileCritical();
      this.resumed = await this.markXid();
      this.owedPauseMs = this.workSincePause = 0;
      return;
    }
    const periodic = this.budget.rebaselineSeconds > 0 && this.period() !== this.lastBaselinePeriod;
    if (periodic || this.overWindows >= 5) {
      this.lastBaselinePeriod = this.period();
      await this.takeBaseline();
      this.resumed = await this.markXid();
      this.owedPauseMs = this.workSincePause = 0;
      return;
    }
    if (this.duty >= 1) {
      this.resumed = workEnd;
      this.owedPauseMs = 0;
      return;
    }
    // Work and pause come in cycles of at least MIN_CYCLE_WORK_MS of work, so each pause is long
    // against the tail of the work's effect that spills into it.
    this.owedPauseMs += (workMs * (1 - this.duty)) / this.duty;
    this.workSincePause += workMs;
    if (this.workSincePause < MIN_CYCLE_WORK_MS) {
      this.resumed = workEnd;
      return;
    }
    const pause = this.owedPauseMs;
    this.owedPauseMs = 0;
    this.workSincePause = 0;
    // The pause's first moments still carry the work's effect (its commit's WAL flush, backends
    // it held up): they count as work. Moving the cut changes both factors of the estimate, the
    // rate while working and the share of time working, in opposite directions.
    const tail = Math.min(WORK_TAIL_MS, pause / 2);
    await this.hold(tail);
    const calm = await this.markXid();
    this.paired.workMs += calm.at - workEnd.at;
    this.paired.workXids += Math.max(0, calm.xid - workEnd.xid);
    await this.hold(pause - tail);
    const resumed = await this.markXid();
    this.paired.pauseMs += resumed.at - calm.at;
    this.paired.pauseXids += Math.max(0, resumed.xid - calm.xid);
    this.resumed = resumed;
  }

  /** The cluster's write-transaction counter now (a read-only query: it assigns no xid). */
  private async markXid(): Promise<XidMark> {
    const r = await this.client.query<{ xid: number }>(XID_SQL);
    this.ownXacts++;
    return { at: this.now(), xid: r.rows[0]!.xid };
  }

  private async holdWhileCritical() {
    let told = 0;
    while (this.critical && !this.cancelled()) {
      if (this.opts.onHold && this.now() - told >= 1000) {
        told = this.now();
        await this.opts.onHold(this.state);
      }
      await this.hold(Math.max(100, this.budget.windowMs / 2));
      await this.judge();
    }
  }

  /**
   * Before a unit of work that cannot be slowed once it runs (one CREATE INDEX CONCURRENTLY):
   * judges the load now and waits while it is critical. Between such units, afterWork keeps
   * the duty cycle as for batches.
   */
  async admit(): Promise<void> {
    if (!this.budget.enabled) return;
    if (!this.baseline) await this.start();
    await this.judge();
    await this.holdWhileCritical();
  }

  private async judge() {
    const s = await this.sample();
    this.activeSamples.push(s.active);
    if (this.budget.probe) await this.probe();
    const a = this.windowStart;
    const measured = a ? this.measureSlowdown(a, s) : null;
    this.slowdown = measured ? measured[0] : null;
    this.windowStart = s;
    this.ownWrites = 0;
    this.ownXacts = 0;
    this.activeSamples = [s.active];
    this.paired = noPairs();

    const crit = this.budget.criticalLoad;
    const critHit =
      this.overLimits(s, crit) ??
      (crit?.appSlowdown !== undefined && measured && measured[0] >= crit.appSlowdown
        ? ([`${measured[1]} (critical ${ratio(1 - crit.appSlowdown)})`, measured[0]] as [
            string,
            number,
          ])
        : null);
    if (critHit) {
      this.critical = true;
      this.reason = `critical: ${critHit[0]}`;
      this.figure = Number(critHit[1].toFixed(3));
      return;
    }
    if (this.critical) {
      // Back under the critical figures: restart gently.
      this.critical = false;
      this.duty = Math.min(this.duty, 0.25);
    }
    const maxHit = this.overLimits(s, this.budget.maxLoad);
    const budget = this.budget.maxAppSlowdown;
    if (maxHit) {
      this.duty = Math.max(this.budget.minDuty, this.duty * 0.7);
      this.reason = maxHit[0];
      this.figure = Number(maxHit[1].toFixed(3));
      return;
    }
    if (!measured) {
      this.duty = Math.min(1, this.duty * 1.25 + 0.05);
    } else {
      this.smoothed =
        this.smoothed === null ? measured[0] : 0.6 * this.smoothed + 0.4 * measured[0];
      const aim = budget * 0.8;
      // Steps are symmetric (×0.8 … ×1.25) while the application is within its budget: one
      // window's throughput is noisy, and a cut of up to half against a growth of at most a
      // quarter made the duty drift to its floor under noise alone (measured: 45 s of TPC-B on
      // 2 cores, the copy at 0.04× its unthrottled rate with the application at 0.80×). Over
      // the budget it may halve at once.
      const floor = this.smoothed > budget ? 0.5 : 0.8;
      const factor = Math.min(1.25, Math.max(floor, aim / Math.max(this.smoothed, 0.001)));
      this.duty = Math.min(1, Math.max(this.budget.minDuty, this.duty * factor));
      this.overWindows = this.smoothed > budget ? this.overWindows + 1 : 0;
      if (this.smoothed > budget || this.duty < 1) {
        this.reason = `${measured[1]} (budget ${ratio(1 - budget)})`;
        this.figure = Number(measured[0].toFixed(3));
      }
    }
    if (this.duty >= 1) {
      this.reason = null;
      this.figure = null;
    }
  }
}

/** The plan's `loadBudget:` section as it reaches an activity (absent in older runs). */
export type PlanLoadBudget = Partial<LoadBudget>;

/** Full settings from the plan's section; null when the plan has none or turns it off. */
export function resolveLoadBudget(
  plan: PlanLoadBudget | null | undefined,
  overrides: Partial<LoadBudget> = {},
): LoadBudget | null {
  if (!plan || plan.enabled === false) return null;
  const out: LoadBudget = { ...defaultLoadBudget };
  for (const [k, v] of Object.entries({ ...plan, ...overrides }))
    if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  return out;
}
