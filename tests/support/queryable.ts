/** Anything with pg's query method: a Pool, a Client or a PoolClient. */
export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}
