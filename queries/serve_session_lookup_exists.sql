-- Whether deploy/roles.sql made the session lookup function in the
-- platform's schema, and it can be trusted: `callrollup_session(text)`,
-- SECURITY DEFINER, owned by a superuser or by the owner of `sessions`.
-- A function of that name anyone else made (any role with CREATE on the
-- schema could, and have it return an operator) is not called: the
-- tables are read directly instead. $1: the schema's name.
SELECT EXISTS (
    SELECT 1
    FROM pg_proc p
    JOIN pg_roles owner ON owner.oid = p.proowner
    WHERE p.oid = to_regprocedure(quote_ident($1) || '.callrollup_session(text)')
      AND p.prosecdef
      AND (owner.rolsuper
           OR p.proowner = (SELECT c.relowner FROM pg_class c
                            WHERE c.oid = to_regclass(quote_ident($1) || '.sessions')))
)
