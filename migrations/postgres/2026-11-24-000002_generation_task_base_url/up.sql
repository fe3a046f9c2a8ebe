-- The base URL the client reached the server at when it started the task: links in results built later
-- (e.g. by a node resuming a simulated job after a restart) point where the client can go.
ALTER TABLE generation_tasks ADD COLUMN base_url TEXT;
