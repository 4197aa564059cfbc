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
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select, SetExpr,
    SetOperator, SetQuantifier, Statement, TableFactor, TableWithJoins, UnaryOperator, Visit,
    VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use super::table::{scan_of, ScanOf};
use crate::error::{Error, Result};

/// How deeply the parser may nest (DataFusion's default): deeper queries
/// are refused rather than overflowing the stack.
const RECURSION_LIMIT: usize = 50;

/// The longest query text: a flat chain (`a + a + …`) parses without
/// nesting, but becomes a tree as deep as it is long.
pub const MAX_SQL_BYTES: usize = 16 * 1024;

/// The deepest expression tree: DataFusion clones, drops and evaluates
/// expressions by recursion without growing the stack (a 60,000-term sum
/// overflowed it, which aborts the process).
const MAX_EXPRESSION_DEPTH: usize = 256;

/// A query `query` may run.
#[derive(Debug, Clone)]
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

/// The FROM items and CTE names of a query, all of them, and the depth
/// of its expressions.
#[derive(Default)]
struct Relations {
    names: Vec<Vec<Ident>>,
    ctes: BTreeSet<String>,
    refusal: Option<String>,
    depth: usize,
}

/// Functions whose answers differ from Postgres' with no error: the
/// formatting functions take strftime patterns in DataFusion (a Postgres
/// pattern came back as its own text on every row).
const REFUSED_FUNCTIONS: [(&str, &str); 4] = [
    ("to_char", "to_char takes strftime patterns here, not Postgres'; use date_trunc, extract or the value itself"),
    ("to_date", "to_date takes strftime patterns here, not Postgres'; cast the text: 'YYYY-MM-DD'::date"),
    ("to_number", "to_number is not Postgres' here; cast the text to numeric"),
    ("to_timestamp", "to_timestamp takes other patterns and units here than Postgres'; cast the text: '…'::timestamptz"),
];

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            self.refusal = Some(format!(
                "an expression nested more than {MAX_EXPRESSION_DEPTH} deep"
            ));
            return ControlFlow::Break(());
        }
        if let Expr::Function(f) = expr {
            let name = f.name.to_string().to_lowercase();
            if let Some((_, why)) = REFUSED_FUNCTIONS.iter().find(|(n, _)| *n == name) {
                self.refusal = Some((*why).to_string());
                return ControlFlow::Break(());
            }
        }
        if let Some(refusal) = distinct_from_beside_logic(expr) {
            self.refusal = Some(refusal);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

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
        if select.into.is_some() {
            self.refusal = Some("SELECT … INTO makes a table; `query` runs only a SELECT".into());
            return ControlFlow::Break(());
        }
        if let Some(refusal) = select.from.iter().find_map(full_join_sharing_keys) {
            self.refusal = Some(refusal);
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
            TableFactor::Derived { .. } => None,
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => full_join_sharing_keys(table_with_joins),
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

/// `a IS [NOT] DISTINCT FROM b AND c` is `(a IS DISTINCT FROM b) AND c`
/// in Postgres; the engine's parser reads `a IS DISTINCT FROM (b AND c)`
/// (a user found 2,858 where Postgres counts 188): such an unbracketed
/// AND, OR or NOT beside the comparison is refused, not answered.
fn distinct_from_beside_logic(expr: &Expr) -> Option<String> {
    let (Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right)) = expr else {
        return None;
    };
    let logic = |e: &Expr| {
        matches!(
            e,
            Expr::BinaryOp {
                op: BinaryOperator::And | BinaryOperator::Or,
                ..
            } | Expr::UnaryOp {
                op: UnaryOperator::Not,
                ..
            }
        )
    };
    (logic(left) || logic(right)).then(|| {
        "IS [NOT] DISTINCT FROM beside AND, OR or NOT without parentheses is read differently here than in Postgres: put the comparison in parentheses, e.g. (resolved IS DISTINCT FROM true) AND severity = 'CRITICAL'".to_string()
    })
}

/// `FULL JOIN … USING (k)` or `NATURAL FULL JOIN`: Postgres' merged `k` is
/// the key from whichever side has the row; the engine gives the left
/// side's, NULL for rows only on the right (found by a user): refused.
fn full_join_sharing_keys(from: &TableWithJoins) -> Option<String> {
    from.joins.iter().find_map(|join| match &join.join_operator {
        JoinOperator::FullOuter(JoinConstraint::Using(_) | JoinConstraint::Natural) => Some(
            "FULL JOIN … USING (or NATURAL FULL JOIN) gives NULL keys for rows only on the right here, unlike Postgres: write FULL JOIN … ON a.k = b.k and select coalesce(a.k, b.k) AS k"
                .to_string(),
        ),
        _ => None,
    })
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

/// A call of one of the engine's functions.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Constructs DataFusion plans with another meaning than Postgres', as
/// calls of the engine's functions with Postgres' meaning:
/// `x AT TIME ZONE z` (a cast that keeps the instant in DataFusion),
/// `extract(f FROM x)` (numeric in Postgres, integers in DataFusion) and
/// `date_part('f', x)` (double precision in Postgres).
struct PostgresCalls;

impl VisitorMut for PostgresCalls {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                *expr = call(
                    super::postgres::AT_TIME_ZONE,
                    vec![(**timestamp).clone(), (**time_zone).clone()],
                );
            }
            Expr::Extract {
                field, expr: value, ..
            } => {
                let field = Expr::Value(
                    datafusion::sql::sqlparser::ast::Value::SingleQuotedString(
                        field.to_string().to_lowercase(),
                    )
                    .into(),
                );
                *expr = call(super::extract::EXTRACT, vec![field, (**value).clone()]);
            }
            Expr::Function(f)
                if f.over.is_none()
                    && f.name.0.len() == 1
                    && f.name.to_string().eq_ignore_ascii_case("date_part") =>
            {
                f.name = ObjectName::from(vec![Ident::new(super::extract::DATE_PART)]);
            }
            _ => {}
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
    if sql.len() > MAX_SQL_BYTES {
        return Err(refuse(format!(
            "the query is {} bytes, more than {} KiB",
            sql.len(),
            MAX_SQL_BYTES / 1024
        )));
    }
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
    let query = match &statement {
        DFStatement::Statement(s) => match s.as_ref() {
            Statement::Query(q) => Some(q),
            _ => None,
        },
        _ => None,
    };
    let Some(query) = query else {
        return Err(refuse(format!(
            "{} is not a SELECT; `query` runs only a SELECT",
            first_words(&statement.to_string())
        )));
    };
    let mut relations = Relations::default();
    let _ = query.visit(&mut relations);
    if let Some(refusal) = relations.refusal {
        return Err(refuse(refusal.replace("{tables}", &table_list)));
    }
    if let DFStatement::Statement(s) = &mut statement {
        let _ = s.visit(&mut PostgresCalls);
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
                let window_table = scan_of(scan) == ScanOf::WindowTable
                    && tables.contains(&scan.table_name.table())
                    && scan
                        .table_name
                        .schema()
                        .is_none_or(|s| s == super::engine::SCHEMA);
                let recursive_rows = scan_of(scan) == ScanOf::RecursiveRows;
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
