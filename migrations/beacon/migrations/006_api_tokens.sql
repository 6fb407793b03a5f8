-- Issue 21: who may call the HTTP APIs, and how much work each caller may start. A token is shown once, when
-- `beacon tokens create` makes it; only its SHA-256 is kept. Quotas count cells: per job (refused whole when
-- over) and per UTC day (reserved atomically with the job's registration, so concurrent submissions of one
-- token can never pass its daily quota together).
CREATE TABLE api_tokens (
    token_id      text PRIMARY KEY,              -- the public part of the token, shown by `beacon tokens list`
    name          text NOT NULL,
    sha256        text NOT NULL UNIQUE,          -- of the whole token
    can_submit    boolean NOT NULL,
    cells_per_day integer NOT NULL CHECK (cells_per_day > 0),
    cells_per_job integer NOT NULL CHECK (cells_per_job > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE api_token_usage (
    token_id text   NOT NULL REFERENCES api_tokens (token_id),
    day      date   NOT NULL,                    -- UTC
    cells    bigint NOT NULL CHECK (cells >= 0),
    PRIMARY KEY (token_id, day)
);

-- Which submission each token made (the job's cells were charged to it).
ALTER TABLE submissions ADD COLUMN token_id text REFERENCES api_tokens (token_id);
