-- The restatement history is append-only for everyone but its owner.
--
-- With deploy/roles.sql the tables belong to callrollup_owner (the role
-- that runs `migrate`) and the nightly credential, callrollup_writer,
-- gets what a run needs through default privileges, which are the same
-- for every table of the schema; this trigger keeps the writer (or any
-- other role) from UPDATE, DELETE or TRUNCATE on the history whatever it
-- was granted, so a stolen nightly credential cannot rewrite what was
-- billed. The table's owner (and a superuser) may still purge it
-- (docs/CONTRACT.md §3).
CREATE FUNCTION {schema}.restatements_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
        RAISE EXCEPTION 'the restatement history is append-only: % refused to role %', TG_OP, current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'only the table''s owner (the role that runs callrollup migrate) may purge it';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER restatements_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {schema}.restatements
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.restatements_append_only();

-- Which restatements an alert has reported (`changes --alert NAME`): one
-- row per alert and restatement, written after the alert's output, so
-- each change is reported once whatever failed in between, and changes
-- committed out of order (shard runs) are never skipped. A purge of the
-- history takes its marks with it.
CREATE TABLE {schema}.restatement_alerts (
    alert          text NOT NULL,
    restatement_id bigint NOT NULL REFERENCES {schema}.restatements (restatement_id) ON DELETE CASCADE,
    reported_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert, restatement_id)
);

-- With deploy/roles.sql: the alert's role may add marks; the nightly
-- writer and the reporting role (which `serve` uses) may not (marking a
-- run reported would hide its changes from the alert).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_alerts') THEN
        GRANT SELECT, INSERT ON {schema}.restatement_alerts TO callrollup_alerts;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_writer') THEN
        REVOKE ALL ON {schema}.restatement_alerts FROM callrollup_writer;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'callrollup_reporter') THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.restatement_alerts FROM callrollup_reporter;
    END IF;
END
$$;
