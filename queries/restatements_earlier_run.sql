    -- The earlier run that wrote the tenant day of row {row}: its
    -- tenant_daily row's run (for an outcome or error row beside it), or
    -- the run that deleted the tenant day, when that was its last change
    -- (a tenant day back after a deletion). None: the day is new.
    SELECT d.run_id FROM {schema}.tenant_daily d
    WHERE d.tenant_id = {row}.tenant_id AND d.day = {row}.day AND d.run_id <> $3
    UNION ALL
    SELECT last.run_id FROM (
        SELECT r.run_id, r.change FROM {schema}.restatements r
        WHERE r.table_name = 'tenant_daily' AND r.tenant_id = {row}.tenant_id
          AND r.day = {row}.day AND r.run_id <> $3
        ORDER BY r.restatement_id DESC
        LIMIT 1
    ) last
    WHERE last.change = 'deleted'
    LIMIT 1
