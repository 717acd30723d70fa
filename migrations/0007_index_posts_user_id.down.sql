-- cutover:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS posts_user_id_idx;
