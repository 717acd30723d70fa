-- Step 3 of 3, once every writer sets avatar_url: SET NOT NULL would scan the table under an
-- ACCESS EXCLUSIVE lock, so prove the rule first with a NOT VALID check validated under a
-- weaker lock; PostgreSQL then uses the validated check and skips the scan.
ALTER TABLE users ADD CONSTRAINT users_avatar_url_not_null CHECK (avatar_url IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_avatar_url_not_null;
ALTER TABLE users ALTER COLUMN avatar_url SET NOT NULL;
ALTER TABLE users DROP CONSTRAINT users_avatar_url_not_null;
