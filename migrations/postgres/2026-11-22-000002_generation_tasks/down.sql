DROP TABLE generation_tasks;
