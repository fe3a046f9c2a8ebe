-- Image and video generation tasks: the latest state of each, so that a late or reconnecting subscriber
-- gets it at once. JSON columns are TEXT on both backends.
CREATE TABLE generation_tasks (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    virtual_key_id BIGINT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    result TEXT,
    error TEXT,
    cost DOUBLE PRECISION,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX generation_tasks_key ON generation_tasks (virtual_key_id, created_at);
