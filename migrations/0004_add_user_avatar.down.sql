-- cutover-lint:ignore drop-column -- reverts 0004, which added this column
ALTER TABLE users DROP COLUMN avatar_url;
