SELECT to_regclass($1 || '.schema_migrations') IS NOT NULL AS has_ledger
