-- One row of preferences per user, with defaults so existing code never sees NULLs; existing
-- users get their row here, new users from the application.
CREATE TABLE user_preferences (
  user_id       bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  theme         text NOT NULL DEFAULT 'light' CHECK (theme IN ('light', 'dark')),
  notifications boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL DEFAULT now()
);

INSERT INTO user_preferences (user_id)
SELECT id FROM users
ON CONFLICT (user_id) DO NOTHING;
