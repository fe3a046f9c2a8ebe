ALTER TABLE generation_tasks DROP COLUMN base_url;
