-- Step 1 of 3: add the column nullable, which is instant and safe on a live table.
ALTER TABLE users ADD COLUMN avatar_url text;
