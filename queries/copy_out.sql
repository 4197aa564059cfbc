-- Any source query as PostgreSQL's binary COPY stream: no text formatting
-- on the server, no parsing in the engine (src/source/pgcopy.rs).
COPY (
{query}
) TO STDOUT (FORMAT binary)
