import type { RunReport } from '../temporal/runs';

const bar = (fraction: number, width = 30) => {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
};

const duration = (seconds: number) => {
  if (seconds < 90) return `${Math.round(seconds)}s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
};

/** A human view of a run: stage, steps, live backfill progress, route, checks, gates. */
export function renderReport(r: RunReport): string {
  const s = r.status;
  const lines = [`run ${r.workflowId}: ${r.runStatus.toLowerCase()}${s ? ` (${s.state})` : ''}`];
  if (s) {
    lines.push(`  plan       ${s.plan} on ${s.table}`);
    lines.push(`  stage      ${s.stage ?? '-'}${s.step ? `  step ${s.step}` : ''}`);
    lines.push(
      `  steps      ${bar(s.stepsDone.length / Math.max(1, s.stepsTotal), 20)} ${s.stepsDone.length}/${s.stepsTotal}`,
    );
    if (s.kind !== 'expand')
      lines.push(`  route      ${s.routePercent}% of traffic on the new table`);
    if (s.waitingGates.length)
      lines.push(
        `  waiting    gate ${s.waitingGates.join(', ')}: approve with \`cutover approve ${s.plan}\``,
      );
    if (s.paused) lines.push('  paused     resume with `cutover resume ' + s.plan + '`');
    if (s.windowEndsAt) lines.push(`  window     until ${s.windowEndsAt}`);
    if (s.rowsCopied !== undefined) lines.push(`  copied     ${s.rowsCopied} rows`);
    for (const c of s.lastChecks)
      lines.push(`  check      ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
    if (s.swap) {
      const sw = s.swap;
      const done = sw.state === 'swapped' || sw.state === 'finished';
      if (sw.mode === 'rename') {
        // A rename's states are the swap's; say them in the rename's words.
        const state = sw.state.replace('swapped', 'renamed').replace('swapping', 'renaming');
        lines.push(
          `  rename     ${state}: old table ${done ? 'archived as' : 'to be archived as'} ${sw.archive} (attempt ${sw.attempts})${sw.state === 'swapped' ? '; the old name is a view over the new table until cleanup' : ''}${sw.reversible ? '' : ', no rename-back (no down mapping)'}`,
        );
        if (sw.waitingFor && !done) lines.push(`  rename     wait ${sw.waitingFor}`);
      } else {
        lines.push(
          `  swap       ${sw.state}: old table ${done ? 'archived as' : 'to be archived as'} ${sw.archive} (attempt ${sw.attempts})${sw.reversible ? '' : ', no swap-back (no down mapping)'}`,
        );
        if (sw.waitingFor && !done) lines.push(`  swap wait  ${sw.waitingFor}`);
      }
    }
    for (const [step, text] of Object.entries(s.results ?? {}))
      lines.push(`  done       ${step}: ${text}`);
    if (s.pointOfNoReturn) lines.push(`  no return  passed: ${s.pointOfNoReturn}`);
    if (s.abortRefused) lines.push(`  abort      ${s.abortRefused}`);
    if (s.error) lines.push(`  error      ${s.error}`);
    if (s.abortReason)
      lines.push(`  rollback   ${s.abortReason}; undone: ${s.undone.join(', ') || 'nothing yet'}`);
  }
  for (const a of r.activities) {
    const d = a.details ?? {};
    // A retry in progress: which attempt, and why the last one failed.
    const retry =
      a.attempt > 1
        ? ` (attempt ${a.attempt}${a.lastError ? `, last error: ${a.lastError}` : ''})`
        : '';
    if (typeof d.rowsScanned === 'number') {
      // A backfillColumn step: rows walked by key, rows it had to change.
      const total = Number(d.estimatedTotal ?? 0);
      const pct = total > 0 ? Math.min(1, (d.rowsScanned as number) / total) : 0;
      lines.push(
        `  ${a.activity.padEnd(10)} ${bar(pct)} ${d.rowsScanned}/${total || '?'} rows walked, ${d.rowsUpdated} updated, ${d.rowsPerSecond ?? 0} rows/s${retry}`,
      );
      if (typeof d.throttled === 'string')
        lines.push(`  ${''.padEnd(10)} throttled: ${d.throttled}`);
    } else if (typeof d.itemsDone === 'number') {
      lines.push(
        `  ${a.activity.padEnd(10)} ${d.itemsDone} items in ${d.batches} batches, ${d.deadLetters} dead letters${retry}`,
      );
    } else if (typeof d.waiting === 'string') {
      // An expand step's DDL statement waiting for a lock, and on whom.
      lines.push(`  running    ${a.activity}: ${d.waiting}${retry}`);
    } else if (typeof d.rowsChecked === 'number') {
      lines.push(`  ${a.activity.padEnd(10)} ${d.rowsChecked} rows checked${retry}`);
    } else if (typeof d.rowsDone === 'number') {
      const total = Number(d.estimatedTotal ?? 0);
      const pct = total > 0 ? Math.min(1, (d.rowsDone as number) / total) : 0;
      const eta = typeof d.etaSeconds === 'number' ? `, ETA ${duration(d.etaSeconds)}` : '';
      lines.push(
        `  ${a.activity.padEnd(10)} ${bar(pct)} ${d.rowsDone}/${total || '?'} rows, ${d.rowsPerSecond ?? 0} rows/s${eta}${d.paused ? ' (paused)' : ''}${retry}`,
      );
      if (typeof d.throttled === 'string')
        lines.push(`  ${''.padEnd(10)} throttled: ${d.throttled}`);
    } else if (typeof d.throttled === 'string') {
      lines.push(`  running    ${a.activity}, throttled: ${d.throttled}`);
    } else {
      lines.push(`  running    ${a.activity}${retry}`);
    }
  }
  if (r.failure && r.failure !== s?.error) lines.push(`  error      ${r.failure}`);
  if (r.result) lines.push(`  result     ${JSON.stringify(r.result)}`);
  return lines.join('\n');
}
