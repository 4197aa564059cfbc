-- A run whose window already holds rows reads each chunk's days back from
-- every summary table to compare them with its own; the other tables have
-- an index on `day`, and without one the findings were scanned whole for
-- every day of the window.
CREATE INDEX data_quality_findings_day_idx ON {schema}.data_quality_findings (day);
