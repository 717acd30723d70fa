/**
 * The markdown the run's own Web UI page shows as "current details", rendered from the status
 * the `status` query returns, so the page and `cutover status` tell the same story. Pure: no
 * clock, no I/O (the workflow passes what it knows).
 */
import type { RunStatus } from './definitions';

/** 5s, 90s → 1m30s, 3600 → 1h, 86400 → 24h. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s / 60}m`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return m ? `${h}h${m}m` : `${h}h`;
}

const number = (n: number): string => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** The line that tells an operator how to pass a gate, with both ways of doing it. */
export function gateInstructions(plan: string, gate: string): string {
  return (
    `waiting for approval of gate \`${gate}\`: \`cutover approve ${plan} ${gate}\`, ` +
    `or signal \`approve\` with \`{"gate":"${gate}"}\``
  );
}

export function renderDetails(s: RunStatus): string {
  const lines: string[] = [];
  lines.push(
    `**${s.plan}** (${s.table}): **${s.state}**` +
      (s.stage ? `, stage \`${s.stage}\`` : '') +
      (s.step ? `, step \`${s.step}\`` : ''),
  );
  lines.push(
    `steps done ${s.stepsDone.length}/${s.stepsTotal}` +
      // An expand/contract plan has no new table to route to.
      (s.kind === 'expand' ? '' : ` · route ${s.routePercent}% to the new table`),
  );
  for (const gate of s.waitingGates) lines.push(`⏸ ${gateInstructions(s.plan, gate)}`);
  if (s.paused) lines.push(`⏸ paused: \`cutover resume ${s.plan}\`, or signal \`resume\``);
  const p = s.progress;
  if (p?.activity === 'ddl') {
    if (p.throttled) lines.push(`waiting: ${p.throttled}`);
  } else if (p) {
    const what = {
      backfill: 'rows copied',
      verify: 'rows verified',
      backfillColumn: 'rows walked',
      batchMigrate: 'items migrated',
    }[p.activity];
    const parts = [
      `${what} ${number(p.rowsDone)}${p.total !== null ? ` / ${number(p.total)}` : ''}`,
    ];
    if (p.percent !== null) parts.push(`${p.percent}%`);
    if (p.rowsPerSecond !== null) parts.push(`${number(p.rowsPerSecond)} rows/s`);
    if (p.etaSeconds !== null) parts.push(`ETA ${formatDuration(p.etaSeconds)}`);
    if (p.attempt > 1) parts.push(`retry: attempt ${p.attempt}`);
    lines.push(`${p.activity}: ${parts.join(' · ')} (as of ${p.updatedAt.slice(11, 19)} UTC)`);
    if (p.throttled) lines.push(`throttled: ${p.throttled}`);
  } else if (s.rowsCopied !== undefined) {
    lines.push(`backfill: ${number(s.rowsCopied)} rows copied`);
  }
  for (const [step, text] of Object.entries(s.results ?? {})) lines.push(`${step}: ${text}`);
  if (s.windowEndsAt)
    lines.push(`window ends ${s.windowEndsAt.replace('T', ' ').slice(0, 19)} UTC`);
  if (s.lastChecks.length) {
    lines.push(
      `last checks: ${s.lastChecks.map((c) => `${c.ok ? '✓' : '✗'} ${c.name} (${c.detail})`).join('; ')}`,
    );
  }
  if (s.abortReason) lines.push(`rollback: ${s.abortReason}`);
  if (s.undone.length) lines.push(`undone: ${s.undone.join(', ')}`);
  if (s.error) lines.push(`error: ${s.error}`);
  if (s.state === 'running' || s.state === 'waiting' || s.state === 'paused')
    lines.push(`abort (rolls back, losing nothing): \`cutover abort ${s.plan} --reason …\``);
  // Two trailing spaces: a markdown line break, so each fact gets its own line.
  return lines.join('  \n');
}
