//! What `query` lets the engine run: an allow-list, checked twice.
//!
//! On the SQL text: the query is parsed with the engine's own parser
//! (DataFusion's, Postgres dialect) and must be exactly one `SELECT`
//! (CTEs, subqueries, joins and set operations welcome) whose every FROM
//! item is one of the contract's tables, a CTE of the query, a subquery,
//! a join or a `VALUES` list. Table functions (`read_csv`, `read_parquet`,
//! `generate_series`, … anywhere), qualified names (`public.call_logs`,
//! `information_schema.tables`), quoted file paths, other statements
//! (`COPY`, `CREATE`, `SET`, `EXPLAIN`, `SHOW`, `INSERT`, …) and more than
//! one statement are refused.
//!
//! On the engine's logical plan: every node must be a relational operator
//! (projection, filter, join, aggregate, window, sort, limit, union,
//! subquery, values, recursive CTE), and every scan one of the tables the
//! query was given, so that a construct the parser lets through cannot
//! reach a file, a catalog or a statement.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, Query, Select, SetExpr, SetOperator, SetQuantifier, Statement, TableFactor, Visit,
    VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use crate::error::{Error, Result};

/// How deeply the parser may nest (DataFusion's default): deeper queries
/// are refused rather than overflowing the stack.
const RECURSION_LIMIT: usize = 50;

/// A query `query` may run.
#[derive(Debug)]
pub struct Checked {
    /// The parsed statement, as the engine plans it.
    pub statement: DFStatement,
    /// The contract's tables the query names (a superset of what it reads:
    /// a CTE of the same name hides the table).
    pub tables: Vec<&'static str>,
}

/// A refusal; the query's own names in it are shown, never sent to the
/// terminal as control characters.
fn refuse(what: impl std::fmt::Display) -> Error {
    let what = what.to_string();
    Error::usage(format!(
        "query refused: {}",
        crate::text::printable(&what).replace('\n', " ")
    ))
}

/// Postgres folds unquoted names to lower case; quoted ones stay as written.
fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The engine's parser error in one line: sqlparser's message says where
/// ("at Line: 1, Column: 8").
fn syntax_error(e: datafusion::error::DataFusionError) -> Error {
    let message = e.to_string();
    let message = message
        .trim_start_matches("SQL error: ")
        .trim_start_matches("ParserError(\"")
        .trim_end_matches("\")")
        .replace("\\\"", "\"");
    let line = message.lines().next().unwrap_or("cannot parse").trim();
    Error::usage(format!(
        "SQL syntax error: {}",
        crate::text::printable(line)
    ))
}

/// The FROM items and CTE names of a query, all of them.
#[derive(Default)]
struct Relations {
    names: Vec<Vec<Ident>>,
    ctes: BTreeSet<String>,
    refusal: Option<String>,
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(fold(&cte.alias.name));
            }
        }
        if let Some(refusal) = multiset_operation(&query.body) {
            self.refusal = Some(refusal);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    // `SELECT FROM t` (no columns) is Postgres; DataFusion 55 panics on it
    // as a scalar subquery (found by the fuzz test): refused everywhere.
    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if select.projection.is_empty() {
            self.refusal = Some("a SELECT with no columns".into());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let refusal = match factor {
            TableFactor::Table { name, args, .. } => {
                if args.is_some() {
                    Some(format!(
                        "{name}(…) is a table function; the tables are {{tables}}"
                    ))
                } else {
                    let parts: Option<Vec<Ident>> =
                        name.0.iter().map(|part| part.as_ident().cloned()).collect();
                    match parts {
                        Some(parts) => {
                            self.names.push(parts);
                            None
                        }
                        None => Some(format!("{name} is not one of the tables ({{tables}})")),
                    }
                }
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => None,
            TableFactor::TableFunction { .. }
            | TableFactor::Function { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::JsonTable { .. }
            | TableFactor::OpenJsonTable { .. }
            | TableFactor::XmlTable { .. } => Some(format!(
                "{factor} is a table function; the tables are {{tables}}"
            )),
            other => Some(format!(
                "{} in FROM: only tables, subqueries, joins and VALUES are read",
                first_words(&other.to_string())
            )),
        };
        match refusal {
            Some(r) => {
                self.refusal = Some(r);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

/// `EXCEPT ALL` and `INTERSECT ALL` in a query body: DataFusion 55 drops
/// every left row that has a match, where Postgres keeps the difference
/// (the fewer) of the two counts: refused rather than answered otherwise.
fn multiset_operation(body: &SetExpr) -> Option<String> {
    match body {
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => {
            let all = matches!(set_quantifier, SetQuantifier::All);
            if all
                && matches!(
                    op,
                    SetOperator::Except | SetOperator::Minus | SetOperator::Intersect
                )
            {
                return Some(format!(
                    "{op} ALL: the engine would not keep the duplicates Postgres keeps; use {op} (distinct rows) or compare counts with GROUP BY"
                ));
            }
            multiset_operation(left).or_else(|| multiset_operation(right))
        }
        _ => None,
    }
}

/// `x AT TIME ZONE z` as a call of the engine's function with Postgres'
/// meaning (DataFusion plans it as a cast, which keeps the instant).
struct AtTimeZoneCalls;

impl VisitorMut for AtTimeZoneCalls {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::AtTimeZone {
            timestamp,
            time_zone,
        } = expr
        {
            let arg = |e: &Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e.clone()));
            *expr = Expr::Function(Function {
                name: ObjectName::from(vec![Ident::new(super::postgres::AT_TIME_ZONE)]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![arg(timestamp), arg(time_zone)],
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            });
        }
        ControlFlow::Continue(())
    }
}

/// The start of a construct's SQL, for a refusal that names it.
fn first_words(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(3).collect();
    let mut text: String = words.join(" ");
    if text.chars().count() > 40 {
        text = text.chars().take(40).collect::<String>() + "…";
    }
    text
}

/// Parses `sql` and checks it against the allow-list: one `SELECT` whose
/// every FROM item is one of `tables` or a CTE of the query.
pub fn check(sql: &str, tables: &[&'static str]) -> Result<Checked> {
    let table_list = tables.join(", ");
    let dialect = PostgreSqlDialect {};
    let mut parser = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .build()
        .map_err(syntax_error)?;
    let mut statements = parser.parse_statements().map_err(syntax_error)?;
    if statements.len() != 1 {
        return Err(refuse(format!(
            "{} statements; give one SELECT",
            statements.len()
        )));
    }
    let mut statement = statements.pop_front().expect("one statement");
    if let DFStatement::Statement(s) = &mut statement {
        let _ = s.visit(&mut AtTimeZoneCalls);
    }
    let query = match &statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => q.clone(),
            other => {
                return Err(refuse(format!(
                    "{} is not a SELECT; `query` runs only a SELECT",
                    first_words(&other.to_string())
                )))
            }
        },
        other => {
            return Err(refuse(format!(
                "{} is not a SELECT; `query` runs only a SELECT",
                first_words(&other.to_string())
            )))
        }
    };
    let mut relations = Relations::default();
    let _ = query.visit(&mut relations);
    if let Some(refusal) = relations.refusal {
        return Err(refuse(refusal.replace("{tables}", &table_list)));
    }
    let mut named = Vec::new();
    for parts in &relations.names {
        let shown = parts
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(".");
        if parts.len() != 1 {
            return Err(refuse(format!(
                "{shown} is not one of the tables ({table_list}); name them without a schema"
            )));
        }
        let name = fold(&parts[0]);
        if let Some(table) = tables.iter().find(|t| **t == name) {
            if !named.contains(table) {
                named.push(*table);
            }
        } else if !relations.ctes.contains(&name) {
            return Err(refuse(format!(
                "{shown} is not one of the tables ({table_list}) nor a CTE of the query"
            )));
        }
    }
    Ok(Checked {
        statement,
        tables: named,
    })
}

/// Checks the engine's logical plan: relational operators only, and every
/// scan one of `tables` (bare names, as the catalog holds them).
pub fn check_plan(plan: &LogicalPlan, tables: &[&'static str]) -> Result<()> {
    let mut refusal: Option<String> = None;
    let _ = plan.apply_with_subqueries(|node| {
        let problem = match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::RecursiveQuery(_) => None,
            LogicalPlan::TableScan(scan) => {
                // The provider itself, not only the name: one of the
                // window's tables, or a recursive CTE's own rows.
                let provider = datafusion::datasource::source_as_provider(&scan.source).ok();
                let any = provider.as_ref().map(|p| p.as_ref() as &dyn std::any::Any);
                let window_table = any.is_some_and(|a| a.is::<super::table::WindowTable>())
                    && tables.contains(&scan.table_name.table())
                    && scan
                        .table_name
                        .schema()
                        .is_none_or(|s| s == super::engine::SCHEMA);
                let recursive_rows = any
                    .is_some_and(|a| a.is::<datafusion::datasource::cte_worktable::CteWorkTable>());
                if window_table || recursive_rows {
                    None
                } else {
                    Some(format!(
                        "a scan of {} is not one of the tables",
                        scan.table_name
                    ))
                }
            }
            other => Some(format!(
                "the plan holds a {} step, which `query` does not run",
                other.display().to_string().split(':').next().unwrap_or("")
            )),
        };
        match problem {
            Some(p) => {
                refusal = Some(p);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    match refusal {
        Some(r) => Err(refuse(r)),
        None => Ok(()),
    }
}
