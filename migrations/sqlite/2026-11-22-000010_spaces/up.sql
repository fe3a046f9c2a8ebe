-- Spaces gateway: agents, entities, smart spaces, memberships, messages, runs and the per-space event log.
-- Ids are UUID text; timestamps Unix milliseconds; JSON columns TEXT. Each space keeps two counters,
-- advanced inside the transaction that writes a message or an event, so seqs are gap-free per space.
CREATE TABLE spaces_agents (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE spaces_entities (
    id TEXT PRIMARY KEY NOT NULL,
    entity_type TEXT NOT NULL,
    external_id TEXT UNIQUE,
    display_name TEXT,
    metadata TEXT,
    agent_id TEXT REFERENCES spaces_agents (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE smart_spaces (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    description TEXT,
    metadata TEXT,
    message_seq BIGINT NOT NULL DEFAULT 0,
    event_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE space_memberships (
    space_id TEXT NOT NULL REFERENCES smart_spaces (id) ON DELETE CASCADE,
    entity_id TEXT NOT NULL REFERENCES spaces_entities (id) ON DELETE CASCADE,
    role TEXT,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (space_id, entity_id)
);
CREATE INDEX space_memberships_entity ON space_memberships (entity_id);
CREATE TABLE space_messages (
    id TEXT PRIMARY KEY NOT NULL,
    space_id TEXT NOT NULL REFERENCES smart_spaces (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    entity_id TEXT,
    role TEXT NOT NULL,
    content TEXT,
    metadata TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (space_id, seq)
);
CREATE TABLE space_runs (
    id TEXT PRIMARY KEY NOT NULL,
    space_id TEXT NOT NULL REFERENCES smart_spaces (id) ON DELETE CASCADE,
    agent_entity_id TEXT NOT NULL,
    agent_id TEXT,
    status TEXT NOT NULL,
    trigger_message_id TEXT,
    metadata TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX space_runs_space ON space_runs (space_id, created_at);
CREATE TABLE space_events (
    id TEXT PRIMARY KEY NOT NULL,
    space_id TEXT NOT NULL REFERENCES smart_spaces (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    run_id TEXT,
    entity_id TEXT,
    entity_type TEXT,
    agent_entity_id TEXT,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (space_id, seq)
);
CREATE INDEX space_events_run ON space_events (run_id, seq);
-- A tool call's result is accepted once: the primary key refuses a second.
CREATE TABLE space_tool_results (
    run_id TEXT NOT NULL REFERENCES space_runs (id) ON DELETE CASCADE,
    call_id TEXT NOT NULL,
    result TEXT NOT NULL,
    source TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, call_id)
);
