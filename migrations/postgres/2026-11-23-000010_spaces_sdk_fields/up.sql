-- Fields the @hsafa/node SDK's types carry that the first spaces schema lacked: a space's
-- showAgentReasoning, a run's triggeredById and parentRunId, and a membership's own id.
ALTER TABLE smart_spaces ADD COLUMN show_agent_reasoning BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE space_runs ADD COLUMN triggered_by_id TEXT;
ALTER TABLE space_runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE space_memberships ADD COLUMN id TEXT;
