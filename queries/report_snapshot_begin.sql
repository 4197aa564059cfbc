-- One report (a command's or a page's), one state of the tables: every
-- statement of it reads the same snapshot, whatever a run commits
-- meanwhile (Summaries::snapshot).
START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;
