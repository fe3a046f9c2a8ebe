-- Every change to a virtual key, written in the same transaction as the change. Each server node polls
-- this log, so that a change made elsewhere (`switchyard keys …` in another process, or another node
-- sharing the database) is announced to operators and cuts the key's live connections on every node.
-- `origin` is the writer's node id; `announced` is true once some node has sent the admin hub event.
-- Rows are pruned after ops.key_changes_retention_seconds.
CREATE TABLE virtual_key_changes (
    id BIGSERIAL PRIMARY KEY,
    key_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    details TEXT,
    origin TEXT NOT NULL,
    announced BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX virtual_key_changes_created ON virtual_key_changes (created_at);
