-- The @hsafa/node SDK's /api/clients: an entity's registered clients (devices or processes), one per
-- (entity, clientKey); registering again refreshes it.
CREATE TABLE spaces_clients (
    id TEXT PRIMARY KEY NOT NULL,
    entity_id TEXT NOT NULL REFERENCES spaces_entities (id) ON DELETE CASCADE,
    client_key TEXT NOT NULL,
    client_type TEXT,
    display_name TEXT,
    capabilities TEXT,
    last_seen_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (entity_id, client_key)
);
