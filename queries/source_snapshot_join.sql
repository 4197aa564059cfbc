-- A parallel reader sees exactly the main session's snapshot.
BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SET TRANSACTION SNAPSHOT '{snapshot}';
