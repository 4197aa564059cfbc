-- The planner needs the staged tables' sizes to pick its joins.
ANALYZE {staged}, {gone}
