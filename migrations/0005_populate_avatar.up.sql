-- Step 2 of 3: backfill the new column for existing rows.
UPDATE users
SET avatar_url = 'https://avatars.example.com/initials/' || id
WHERE avatar_url IS NULL;
