DROP TABLE virtual_key_changes;
