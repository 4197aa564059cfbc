-- Identifies the source of a snapshot without secrets: server, port,
-- database and version (hashed together with the schema by the engine).
SELECT coalesce(inet_server_addr()::text, 'local socket') AS host,
       coalesce(inet_server_port(), 0) AS port,
       current_database()::text AS database,
       current_setting('server_version') AS version
