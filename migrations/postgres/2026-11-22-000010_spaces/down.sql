DROP TABLE space_tool_results;
DROP TABLE space_events;
DROP TABLE space_runs;
DROP TABLE space_messages;
DROP TABLE space_memberships;
DROP TABLE smart_spaces;
DROP TABLE spaces_entities;
DROP TABLE spaces_agents;
