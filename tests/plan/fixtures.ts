/** Source tables the example plans and the bad-plan cases run against. */
export const exampleSchema = `
  CREATE TABLE customers_ref (id int PRIMARY KEY);
  CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers_ref (id),
    total numeric(10,2) NOT NULL CHECK (total >= 0),
    note text,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX orders_customer_idx ON orders (customer_id);
  CREATE UNIQUE INDEX orders_note_key ON orders (note);

  CREATE TABLE posts (
    id bigint PRIMARY KEY,
    author_id bigint NOT NULL,
    title text NOT NULL,
    body text NOT NULL DEFAULT '',
    published_at timestamptz
  );

  CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE
  );

  -- The example application's accounts (plans/expand-contract-users.yaml changes them).
  CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL
  );
  CREATE TABLE user_preferences (
    user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    theme text NOT NULL DEFAULT 'light'
  );

  CREATE TABLE nokey (a int, b text);
  CREATE TABLE nullable_key (email text UNIQUE, n int);
  CREATE TABLE composite (tenant int NOT NULL, seq int NOT NULL, v text, PRIMARY KEY (tenant, seq));
`;
