ALTER TABLE space_memberships DROP COLUMN id;
ALTER TABLE space_runs DROP COLUMN parent_run_id;
ALTER TABLE space_runs DROP COLUMN triggered_by_id;
ALTER TABLE smart_spaces DROP COLUMN show_agent_reasoning;
