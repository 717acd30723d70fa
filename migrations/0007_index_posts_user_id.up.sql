-- cutover:no-transaction
-- posts is large and busy: build the index without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_user_id_idx ON posts (user_id);
