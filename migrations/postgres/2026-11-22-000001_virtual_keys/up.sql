-- Virtual keys: only the SHA-256 of a key and a short display prefix are stored.
-- Timestamps are Unix milliseconds so that SQLite and PostgreSQL share one schema.
CREATE TABLE virtual_keys (
    id BIGSERIAL PRIMARY KEY,
    key_name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    description TEXT,
    is_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at BIGINT,
    allowed_models TEXT,
    rate_limit_rpm INTEGER,
    rate_limit_rpd INTEGER,
    max_connections INTEGER,
    max_budget DOUBLE PRECISION,
    current_spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    metadata TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
