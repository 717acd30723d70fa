/**
 * A router-aware application across the swap: router.table(key) names the table that holds the
 * key's data before (the new table's temporary name at 100%), after the swap (the original name,
 * learnt from the route row by NOTIFY) and after a swap-back; the temporary name keeps working
 * as a view in the moment between the swap and the notification.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { swapAttempt, swapBackAttempt, type SwapInput } from '../../src/steps/swap/swap';
import { createRouter } from '../../src/router/app-router';
import { setRoute } from '../../src/router/store';
import type { TestDatabase } from '../support/db';
import { seedOrders, widenPlanYaml } from '../support/orders';
import { prepare, useSwapDatabase } from './support';

let db: TestDatabase;
let client: pg.Client;

useSwapDatabase('swaprouter', (d, c) => {
  db = d;
  client = c;
});

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
};

describe('createRouter across the swap', () => {
  it('keeps returning the table that holds the data', async () => {
    await seedOrders(db, 50);
    const plan = await prepare(client, widenPlanYaml('router_swap', ''));
    await setRoute(client, 'router_swap', 100);
    const router = createRouter({
      connectionString: db.url,
      migration: 'router_swap',
      tables: { old: 'orders', new: 'orders_v2' },
    });
    try {
      await router.ready();
      expect(router.table(7)).toBe('orders_v2');
      const input: SwapInput = {
        change: plan.change,
        archive: 'orders_old_router',
        lockTimeoutMs: 2000,
        directions: 'both',
      };
      let done = false;
      for (let i = 0; i < 10 && !done; i++) done = (await swapAttempt(input)).done;
      expect(done).toBe(true);
      // Before the router hears of it, the name it still returns is a view over the new table.
      await client.query(`UPDATE orders_v2 SET amount_cents = 1 WHERE id = 7`);
      await until('the router to learn of the swap', () => router.swapped);
      expect(router.table(7)).toBe('orders');
      expect(router.table(8)).toBe('orders');
      const row = await client.query(`SELECT amount_cents FROM ${router.table(7)} WHERE id = 7`);
      expect(row.rows).toEqual([{ amount_cents: 1 }]);
      expect((await swapBackAttempt(input)).done).toBe(true);
      await until('the router to learn of the swap-back', () => !router.swapped);
      expect(router.table(7)).toBe('orders_v2');
      const back = await client.query(`SELECT amount_cents FROM orders WHERE id = 7`);
      expect(back.rows).toEqual([{ amount_cents: 1 }]);
    } finally {
      await router.close();
    }
  });
});
