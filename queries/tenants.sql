-- Every tenant (small): the zone that defines its days and its name.
SELECT t.tenant_id           AS tenant_id,
       t.business_name::text AS business_name,
       t.timezone::text      AS timezone,
       t.status::text        AS status
FROM {schema}.tenants t
WHERE true {tenant_filter}
