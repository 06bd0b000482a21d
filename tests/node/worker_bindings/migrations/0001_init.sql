-- Applied by `tristore serve --config wrangler.jsonc` to wb-db (and again after each reset).
CREATE TABLE wb_users (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL);
CREATE TABLE wb_docs (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES wb_users(id), title TEXT);
