-- Orders, keyed by a 32-bit integer: the table the blue-green demo widens to bigint.
-- cutover-lint:ignore prefer-bigint -- kept 32-bit on purpose: the blue-green demo widens it
CREATE TABLE orders (
  id          integer PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  amount_cents integer NOT NULL CHECK (amount_cents >= 0),
  status      text NOT NULL DEFAULT 'new',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_id_idx ON orders (user_id);
