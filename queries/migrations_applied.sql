-- Applied migrations, or none when the ledger does not exist yet.
SELECT version, name, checksum FROM {schema}.schema_migrations ORDER BY version
