-- The values were derived, so clearing them restores the state after 0004.
UPDATE users SET avatar_url = NULL;
