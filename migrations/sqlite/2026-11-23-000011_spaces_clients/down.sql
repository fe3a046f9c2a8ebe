DROP TABLE spaces_clients;
