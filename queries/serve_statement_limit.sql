-- A `serve` request's statements end at its deadline: what is left of its
-- time, in milliseconds (waiting for a session slot took some).
SET statement_timeout = {milliseconds}
