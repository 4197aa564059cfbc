-- The engine's schema, when it does not exist yet. Skipped when it does:
-- creating a schema needs CREATE on the database, which a writer that
-- only owns its schema (deploy/roles.sql) does not have.
CREATE SCHEMA {schema}
