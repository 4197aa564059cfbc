-- Every session: the server checks every 10 s, while a statement runs,
-- whether the engine is still connected, and ends the statement (and with
-- it the transaction and its locks) when it is not: a killed engine's
-- backend does not run on holding the run's locks. Postgres 14 and later;
-- older servers only notice when they next write to the socket.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        PERFORM set_config('client_connection_check_interval', '10s', false);
    END IF;
END
$$;
