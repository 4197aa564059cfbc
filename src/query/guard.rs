//! What `query` lets Polars SQL run. The query is parsed with the parser
//! Polars SQL itself uses (`sqlparser`, the version polars-sql depends
//! on), and every relation of its whole AST — CTEs, subqueries in FROM,
//! WHERE and SELECT, joins, set operations — must be one of the contract's
//! tables or a CTE the query defines. Table functions (`read_csv`,
//! `read_parquet`, … which read any file), schema-qualified names, other
//! statements and more than one statement are refused: an allow-list, not
//! a deny-list.
//!
//! Where Polars SQL answers a construct wrong, the query is rewritten into
//! one it answers right, or refused naming the construct:
//!
//! * Polars evaluates HAVING and a grouped query's ORDER BY over the
//!   aggregated rows, so `HAVING count(*) > 2000` compares the number of
//!   groups and `HAVING sum(x) > 1` sums the groups' column. An aggregate
//!   there that is a selected item with an alias becomes that alias; at the
//!   top level any other aggregate becomes a hidden selected column that is
//!   dropped after the query; inside a subquery, CTE or set operation it
//!   is refused.
//! * `GROUP BY alias` (Postgres' output-column name) becomes the item's
//!   ordinal, which Polars resolves.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    ObjectName, Query, Select, SelectItem, SetExpr, Statement, TableFactor, Value, Visit, VisitMut,
    Visitor, VisitorMut, WindowType,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserOptions};

use crate::error::{Error, Result};

/// Hidden columns added for HAVING / ORDER BY aggregates start with this.
pub const HIDDEN_PREFIX: &str = "__callrollup_hidden_";

/// Polars SQL's aggregate functions (polars-sql 0.49 `functions.rs`).
const AGGREGATES: [&str; 24] = [
    "avg",
    "corr",
    "count",
    "covar_pop",
    "covar",
    "covar_samp",
    "first",
    "last",
    "max",
    "median",
    "quantile_cont",
    "quantile_disc",
    "min",
    "stdev",
    "stddev",
    "stdev_samp",
    "stddev_samp",
    "sum",
    "var",
    "variance",
    "var_samp",
    "array_agg",
    "string_agg",
    "mean",
];

/// A query `query` may run, as Polars will run it.
#[derive(Debug)]
pub struct Checked {
    /// The SQL to give Polars (the parsed query, rewritten where needed).
    pub sql: String,
    /// The contract's tables the query reads.
    pub tables: Vec<&'static str>,
    /// Hidden columns to drop from the result.
    pub hidden: Vec<String>,
    /// How many SELECTs of the query group (GROUP BY).
    pub grouped_selects: usize,
}

fn refuse(what: impl std::fmt::Display) -> Error {
    Error::usage(format!("query refuses this SQL: {what}"))
}

/// The name as Postgres reads it: unquoted names fold to lower case.
fn fold(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

/// Parses, allow-lists and rewrites `sql`. `tables` are the contract's
/// tables, `columns` every column of them.
pub fn check(sql: &str, tables: &[&'static str], columns: &BTreeSet<String>) -> Result<Checked> {
    let mut statements = Parser::new(&GenericDialect)
        .with_options(ParserOptions {
            trailing_commas: true,
            ..Default::default()
        })
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|e| Error::usage(format!("the query is not valid SQL: {e}")))?;
    let statement = match statements.as_mut_slice() {
        [one] => one,
        [] => return Err(refuse("it holds no statement; give one SELECT query")),
        many => {
            return Err(refuse(format!(
                "it holds {} statements; give one SELECT query",
                many.len()
            )))
        }
    };
    let query = match statement {
        Statement::Query(query) => query,
        other => {
            // Only the statement's first word: never its arguments.
            let keyword = other
                .to_string()
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_uppercase();
            return Err(refuse(format!(
                "a {keyword} statement; only one SELECT query runs"
            )));
        }
    };

    // Unquoted relation and CTE names fold to lower case, as in Postgres.
    let _ = VisitMut::visit(&mut **query, &mut FoldNames);
    let mut ctes = Ctes::default();
    let _ = Visit::visit(&**query, &mut ctes);
    let mut allow = AllowList {
        tables,
        ctes: &ctes.0,
        read: BTreeSet::new(),
    };
    if let ControlFlow::Break(e) = Visit::visit(&**query, &mut allow) {
        return Err(e);
    }
    let read: Vec<&'static str> = tables
        .iter()
        .copied()
        .filter(|t| allow.read.contains(*t))
        .collect();

    let mut names = Names::default();
    let _ = Visit::visit(&**query, &mut names);
    let mut rewrite = Rewrite {
        columns,
        names: &names.0,
        queries: 0,
        hidden: Vec::new(),
        grouped: 0,
    };
    if let ControlFlow::Break(e) = VisitMut::visit(&mut **query, &mut rewrite) {
        return Err(e);
    }
    if let ControlFlow::Break(e) = VisitMut::visit(&mut **query, &mut NullSums) {
        return Err(e);
    }
    Ok(Checked {
        sql: statement.to_string(),
        tables: read,
        hidden: rewrite.hidden,
        grouped_selects: rewrite.grouped,
    })
}

/// Folds unquoted relation names and CTE names to lower case.
struct FoldNames;

impl VisitorMut for FoldNames {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        for ident in relation.0.iter_mut() {
            ident.value = fold(ident);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = query.with.as_mut() {
            for cte in with.cte_tables.iter_mut() {
                cte.alias.name.value = fold(&cte.alias.name);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Every CTE name the query defines.
#[derive(Default)]
struct Ctes(BTreeSet<String>);

impl Visitor for Ctes {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = query.with.as_ref() {
            self.0
                .extend(with.cte_tables.iter().map(|c| c.alias.name.value.clone()));
        }
        ControlFlow::Continue(())
    }
}

/// Every relation must be a contract table or a CTE; nothing else reads.
struct AllowList<'a> {
    tables: &'a [&'static str],
    ctes: &'a BTreeSet<String>,
    read: BTreeSet<String>,
}

impl AllowList<'_> {
    fn tables(&self) -> String {
        self.tables.join(", ")
    }

    fn allow(&mut self, name: &ObjectName) -> ControlFlow<Error> {
        let [ident] = name.0.as_slice() else {
            return ControlFlow::Break(refuse(format!(
                "the schema-qualified name {name}; name a table alone: the tables are {}",
                self.tables()
            )));
        };
        let value = ident.value.as_str();
        if self.tables.contains(&value) {
            self.read.insert(value.to_string());
            return ControlFlow::Continue(());
        }
        if self.ctes.contains(value) {
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(refuse(format!(
            "the relation {ident} is not one of the tables; the tables are {} (and the query's own CTEs)",
            self.tables()
        )))
    }
}

impl Visitor for AllowList<'_> {
    type Break = Error;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Error> {
        match factor {
            TableFactor::Table { name, args, .. } => {
                if args.is_some() {
                    // The function's name only: never its arguments.
                    return ControlFlow::Break(refuse(format!(
                        "the table function {name}(…); query reads only the tables {}",
                        self.tables()
                    )));
                }
                self.allow(name)
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {
                ControlFlow::Continue(())
            }
            other => {
                let construct = match other {
                    TableFactor::TableFunction { .. } => "TABLE(…)",
                    TableFactor::Function { .. } => "a table function",
                    TableFactor::UNNEST { .. } => "UNNEST",
                    TableFactor::JsonTable { .. } | TableFactor::OpenJsonTable { .. } => {
                        "a JSON table"
                    }
                    TableFactor::Pivot { .. } => "PIVOT",
                    TableFactor::Unpivot { .. } => "UNPIVOT",
                    _ => "this FROM item",
                };
                ControlFlow::Break(refuse(format!(
                    "{construct} in FROM; query reads only the tables {}",
                    self.tables()
                )))
            }
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Error> {
        // Every relation of a query is a table factor's; this is the
        // backstop should another construct carry one.
        self.allow(relation)
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Error> {
        if let Expr::BinaryOp {
            op: BinaryOperator::Multiply,
            ..
        } = expr
        {
            let mut factors = Vec::new();
            product_factors(expr, &mut factors);
            let money = factors.iter().filter(|f| names_money(f)).count();
            if money > 2 {
                return ControlFlow::Break(refuse(format!(
                    "a product of {money} money values: Polars' decimals add the factors' decimals and overflow 38 digits silently (a wrong value, not an error); multiply at most two money values"
                )));
            }
        }
        if let Expr::Function(f) = expr {
            let name = f.name.to_string().to_lowercase();
            // Polars SQL ignores a window's ORDER BY and frame: `sum(x)
            // OVER (ORDER BY t)` came back as the partition's total, not a
            // running sum.
            let ordered = match &f.over {
                Some(WindowType::WindowSpec(spec)) => {
                    !spec.order_by.is_empty() || spec.window_frame.is_some()
                }
                Some(WindowType::NamedWindow(_)) => true,
                None => false,
            };
            if ordered {
                return ControlFlow::Break(refuse(format!(
                    "the window function {name}(…) OVER (… ORDER BY or a frame, or a named window): Polars SQL computes it over the whole partition, not a running value; use OVER (PARTITION BY …) only"
                )));
            }
            if name.starts_with("read_") || name.starts_with("scan_") {
                return ControlFlow::Break(refuse(format!(
                    "the function {name}(…); query reads only the tables {}",
                    self.tables()
                )));
            }
        }
        ControlFlow::Continue(())
    }
}

/// The factors of a chain of `*` (through parentheses).
fn product_factors<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Multiply,
            right,
        } => {
            product_factors(left, out);
            product_factors(right, out);
        }
        Expr::Nested(inner) => product_factors(inner, out),
        other => out.push(other),
    }
}

/// Whether an expression reads a money column (`…_usd`, a decimal).
fn names_money(expr: &Expr) -> bool {
    struct Money(bool);
    impl Visitor for Money {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            let last = match expr {
                Expr::Identifier(id) => Some(id),
                Expr::CompoundIdentifier(ids) => ids.last(),
                _ => None,
            };
            if last.is_some_and(|id| fold(id).ends_with("_usd")) {
                self.0 = true;
            }
            ControlFlow::Continue(())
        }
    }
    let mut money = Money(false);
    let _ = Visit::visit(expr, &mut money);
    money.0
}

/// How often each output or alias name is defined anywhere in the query:
/// SELECT aliases, bare selected columns, CTE and derived-table column
/// lists.
#[derive(Default)]
struct Names(HashMap<String, usize>);

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let mut add = |name: String| *self.0.entry(name).or_default() += 1;
        if let Some(with) = query.with.as_ref() {
            for cte in &with.cte_tables {
                cte.alias.columns.iter().for_each(|c| add(fold(&c.name)));
            }
        }
        let mut selects = Vec::new();
        collect_selects(&query.body, &mut selects);
        for select in selects {
            for item in &select.projection {
                match item {
                    SelectItem::ExprWithAlias { alias, .. } => add(fold(alias)),
                    SelectItem::UnnamedExpr(Expr::Identifier(id)) => add(fold(id)),
                    _ => {}
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived {
            alias: Some(alias), ..
        } = factor
        {
            for c in &alias.columns {
                *self.0.entry(fold(&c.name)).or_default() += 1;
            }
        }
        ControlFlow::Continue(())
    }
}

fn collect_selects<'a>(body: &'a SetExpr, out: &mut Vec<&'a Select>) {
    match body {
        SetExpr::Select(select) => out.push(select),
        SetExpr::SetOperation { left, right, .. } => {
            collect_selects(left, out);
            collect_selects(right, out);
        }
        _ => {}
    }
}

fn collect_selects_mut<'a>(body: &'a mut SetExpr, out: &mut Vec<&'a mut Select>) {
    match body {
        SetExpr::Select(select) => out.push(select),
        SetExpr::SetOperation { left, right, .. } => {
            collect_selects_mut(left, out);
            collect_selects_mut(right, out);
        }
        _ => {}
    }
}

/// The rewrites, applied to every query of the AST; the first one visited
/// is the statement's own (the top level, where hidden columns may be
/// added).
struct Rewrite<'a> {
    columns: &'a BTreeSet<String>,
    names: &'a HashMap<String, usize>,
    queries: usize,
    hidden: Vec<String>,
    grouped: usize,
}

impl VisitorMut for Rewrite<'_> {
    type Break = Error;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Error> {
        let top = self.queries == 0;
        self.queries += 1;
        match self.rewrite(query, top) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

impl Rewrite<'_> {
    fn rewrite(&mut self, query: &mut Query, top: bool) -> Result<()> {
        let is_select = matches!(*query.body, SetExpr::Select(_));
        if !is_select {
            // A set operation: each SELECT of it, no hidden columns.
            let mut selects = Vec::new();
            collect_selects_mut(&mut query.body, &mut selects);
            for select in selects {
                if is_grouped(select) {
                    self.grouped += 1;
                }
                self.group_by_keys(select)?;
                let Select {
                    projection, having, ..
                } = select;
                if let Some(having) = having.as_mut() {
                    let mut extra = Vec::new();
                    replace_aggregates(having, projection, None, &mut extra, "HAVING")?;
                }
            }
            return Ok(());
        }
        let SetExpr::Select(select) = &mut *query.body else {
            unreachable!("checked above")
        };
        self.group_by_keys(select)?;
        let grouped = is_grouped(select);
        if grouped {
            self.grouped += 1;
        }
        let first_hidden = top.then_some(self.hidden.len());
        let mut extra: Vec<(String, Expr)> = Vec::new();
        let Select {
            projection,
            having,
            distinct,
            ..
        } = &mut **select;
        if let Some(having) = having.as_mut() {
            replace_aggregates(having, projection, first_hidden, &mut extra, "HAVING")?;
        }
        if grouped {
            if let Some(order_by) = query.order_by.as_mut() {
                for item in order_by.exprs.iter_mut() {
                    replace_aggregates(
                        &mut item.expr,
                        projection,
                        first_hidden,
                        &mut extra,
                        "ORDER BY",
                    )?;
                }
            }
        }
        if !extra.is_empty() {
            if distinct.is_some() {
                return Err(refuse(
                    "SELECT DISTINCT with an aggregate in HAVING or ORDER BY that is not a selected column; select it with an alias and use the alias",
                ));
            }
            for (name, expr) in extra {
                projection.push(SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::new(name.clone()),
                });
                self.hidden.push(name);
            }
        }
        Ok(())
    }

    /// Polars SQL groups correctly only by plain columns (`GROUP BY
    /// calls > 100` gave two `false` groups; an aliased key fails). So a
    /// key must be a column, or an ordinal or alias (Postgres' output-column
    /// name: not a column of a table, not defined elsewhere in the query)
    /// of a selected plain column, which becomes that column; any other key
    /// is refused, naming it.
    fn group_by_keys(&self, select: &mut Select) -> Result<()> {
        let GroupByExpr::Expressions(keys, _) = &mut select.group_by else {
            return Err(refuse(
                "GROUP BY ALL; name the grouping columns (Polars SQL groups only plain columns correctly)",
            ));
        };
        let plain = |e: &Expr| matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        for key in keys.iter_mut() {
            let item = match &*key {
                Expr::Identifier(id) => {
                    let name = fold(id);
                    if self.columns.contains(&name)
                        || self.names.get(&name).copied().unwrap_or(0) > 1
                    {
                        continue;
                    }
                    select.projection.iter().find_map(|item| match item {
                        SelectItem::ExprWithAlias { expr, alias } if fold(alias) == name => {
                            Some(expr.clone())
                        }
                        _ => None,
                    })
                }
                Expr::CompoundIdentifier(_) => continue,
                Expr::Value(Value::Number(n, _)) => {
                    let item = n
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| select.projection.get(i));
                    match item {
                        Some(SelectItem::UnnamedExpr(e))
                        | Some(SelectItem::ExprWithAlias { expr: e, .. }) => Some(e.clone()),
                        _ => {
                            return Err(refuse(format!(
                                "GROUP BY {n} is not a selected item"
                            )))
                        }
                    }
                }
                other => {
                    return Err(refuse(format!(
                        "GROUP BY {other}: Polars SQL groups correctly only by plain columns; compute the key in a CTE or subquery and group by its column"
                    )))
                }
            };
            match item {
                Some(e) if plain(&e) => *key = e,
                Some(e) => {
                    return Err(refuse(format!(
                        "GROUP BY {key} (the item {e}): Polars SQL groups correctly only by plain columns; compute the key in a CTE or subquery and group by its column"
                    )))
                }
                // Not an alias either: Polars reports the missing column.
                None => {}
            }
        }
        Ok(())
    }
}

fn is_grouped(select: &Select) -> bool {
    match &select.group_by {
        GroupByExpr::Expressions(keys, _) => !keys.is_empty(),
        GroupByExpr::All(_) => true,
    }
}

/// Polars SQL's `sum` of no values (only NULLs, or no rows) is 0; SQL's is
/// NULL. Each plain `sum(x)` becomes `CASE WHEN count(x) = 0 THEN NULL
/// ELSE sum(x) END` (with the same OVER for a window), which Polars
/// answers right, grouped or not.
struct NullSums;

impl VisitorMut for NullSums {
    type Break = Error;

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
        let Expr::Function(f) = &*expr else {
            return ControlFlow::Continue(());
        };
        if f.name.to_string().to_lowercase() != "sum" || f.filter.is_some() {
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &f.args else {
            return ControlFlow::Continue(());
        };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice() else {
            return ControlFlow::Continue(());
        };
        if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
            return ControlFlow::Continue(());
        }
        // The same call counting instead (a window's OVER included).
        let mut count = f.clone();
        count.name = ObjectName(vec![Ident::new("count")]);
        let text = format!("CASE WHEN {count} = 0 THEN NULL ELSE {expr} END");
        match Parser::new(&GenericDialect)
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr())
        {
            Ok(case) => {
                *expr = case;
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(refuse(format!("sum({arg}) cannot be rewritten: {e}"))),
        }
    }
}

/// An expression as text for comparison: function names and unquoted
/// identifiers folded.
fn normalized(expr: &Expr) -> String {
    struct Norm;
    impl VisitorMut for Norm {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            match expr {
                Expr::Function(f) => {
                    for ident in f.name.0.iter_mut() {
                        ident.value = fold(ident);
                    }
                }
                Expr::Identifier(id) => id.value = fold(id),
                Expr::CompoundIdentifier(ids) => ids.iter_mut().for_each(|id| id.value = fold(id)),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut copy = expr.clone();
    let _ = VisitMut::visit(&mut copy, &mut Norm);
    copy.to_string()
}

fn is_aggregate(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f) if AGGREGATES.contains(&f.name.to_string().to_lowercase().as_str()))
}

/// Replaces each aggregate of `expr` (not inside a subquery, which is its
/// own scope) by the alias of the selected item it equals, else (at the
/// top level, `first_hidden` set) by a hidden column added to `extra`;
/// anywhere else it is refused.
fn replace_aggregates(
    expr: &mut Expr,
    projection: &[SelectItem],
    first_hidden: Option<usize>,
    extra: &mut Vec<(String, Expr)>,
    clause: &str,
) -> Result<()> {
    struct Replace<'a> {
        projection: &'a [SelectItem],
        first_hidden: Option<usize>,
        extra: &'a mut Vec<(String, Expr)>,
        clause: &'a str,
        depth: usize,
    }
    impl VisitorMut for Replace<'_> {
        type Break = Error;
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<Error> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<Error> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Error> {
            if self.depth > 0 || !is_aggregate(expr) {
                return ControlFlow::Continue(());
            }
            if matches!(expr, Expr::Function(f) if f.over.is_some()) {
                return ControlFlow::Break(refuse(format!(
                    "a window function in {}; select it with an alias and use the alias",
                    self.clause
                )));
            }
            let key = normalized(expr);
            let alias = self.projection.iter().find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias } if normalized(expr) == key => {
                    Some(alias.clone())
                }
                _ => None,
            });
            let alias = alias.or_else(|| {
                self.extra
                    .iter()
                    .find(|(_, e)| normalized(e) == key)
                    .map(|(name, _)| Ident::new(name.clone()))
            });
            let alias = match (alias, self.first_hidden) {
                (Some(alias), _) => alias,
                (None, Some(first)) => {
                    let name = format!("{HIDDEN_PREFIX}{}", first + self.extra.len());
                    self.extra.push((name.clone(), expr.clone()));
                    Ident::new(name)
                }
                (None, None) => {
                    return ControlFlow::Break(refuse(format!(
                        "the aggregate {expr} in {} of a subquery, CTE or set operation is not one of its selected columns (Polars SQL would compute it over the aggregated rows); select it with an alias and use the alias",
                        self.clause
                    )))
                }
            };
            *expr = Expr::Identifier(alias);
            ControlFlow::Continue(())
        }
    }
    let mut replace = Replace {
        projection,
        first_hidden,
        extra,
        clause,
        depth: 0,
    };
    match VisitMut::visit(expr, &mut replace) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: [&str; 6] = [
        "call_logs",
        "system_errors",
        "tenants",
        "tenant_daily",
        "tenant_daily_outcomes",
        "tenant_daily_errors",
    ];

    fn columns() -> BTreeSet<String> {
        ["tenant_id", "day", "total_cost_usd", "call_id", "calls"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn check_sql(sql: &str) -> Result<Checked> {
        check(sql, &TABLES, &columns())
    }

    fn refused(sql: &str) -> String {
        let e = check_sql(sql).expect_err(sql);
        assert_eq!(e.exit_code(), 2, "{sql}: {e}");
        e.to_string()
    }

    #[test]
    fn table_functions_are_refused_wherever_they_are() {
        for f in [
            "read_csv",
            "read_parquet",
            "read_ipc",
            "read_json",
            "READ_CSV",
        ] {
            for sql in [
                format!("SELECT * FROM {f}('/etc/passwd')"),
                format!("WITH x AS (SELECT * FROM {f}('/etc/passwd')) SELECT * FROM x"),
                format!("SELECT * FROM (SELECT * FROM {f}('/etc/passwd')) s"),
                format!("SELECT * FROM call_logs c JOIN {f}('/etc/passwd') p ON c.call_id = p.a"),
                format!(
                    "SELECT * FROM call_logs WHERE call_id IN (SELECT a FROM {f}('/etc/passwd'))"
                ),
                format!("SELECT (SELECT max(a) FROM {f}('/etc/passwd')) AS m"),
                format!("SELECT call_id FROM call_logs UNION SELECT a FROM {f}('/etc/passwd')"),
                format!("SELECT {f}('/etc/passwd') AS x"),
            ] {
                let e = refused(&sql);
                assert!(!e.contains("/etc/passwd"), "{e}");
            }
        }
    }

    #[test]
    fn only_contract_tables_and_ctes() {
        for sql in [
            "SELECT * FROM secrets",
            "SELECT * FROM public.call_logs",
            "SELECT * FROM \"CALL_LOGS\"",
            "SELECT 1; SELECT 2",
            "CREATE TABLE x AS SELECT * FROM call_logs",
            "DROP TABLE call_logs",
            "EXPLAIN SELECT * FROM call_logs",
            "SHOW TABLES",
            "TRUNCATE call_logs",
            "DELETE FROM call_logs",
            "SELECT * FROM UNNEST(ARRAY[1, 2]) AS t(a)",
        ] {
            refused(sql);
        }
        for (sql, read) in [
            ("SELECT * FROM CALL_LOGS", vec!["call_logs"]),
            ("SELECT * FROM \"call_logs\"", vec!["call_logs"]),
            (
                "WITH Busy AS (SELECT * FROM tenant_daily) SELECT * FROM busy JOIN tenants USING (tenant_id)",
                vec!["tenants", "tenant_daily"],
            ),
            ("SELECT 1 AS one", vec![]),
        ] {
            let checked = check_sql(sql).unwrap();
            assert_eq!(checked.tables, read, "{sql}");
        }
    }

    #[test]
    fn having_aggregates_become_aliases_or_hidden_columns() {
        let c = check_sql(
            "SELECT tenant_id, count(*) AS n FROM call_logs GROUP BY tenant_id HAVING COUNT(*) > 2000",
        )
        .unwrap();
        assert!(c.sql.ends_with("HAVING n > 2000"), "{}", c.sql);
        assert!(c.hidden.is_empty());
        let c = check_sql(
            "SELECT tenant_id FROM call_logs GROUP BY tenant_id HAVING sum(total_cost_usd) > 1 ORDER BY count(call_id) DESC",
        )
        .unwrap();
        assert_eq!(c.hidden.len(), 2, "{}", c.sql);
        assert!(
            c.sql
                .contains("sum(total_cost_usd) END AS __callrollup_hidden_0"),
            "{}",
            c.sql
        );
        let e = refused(
            "WITH x AS (SELECT tenant_id FROM call_logs GROUP BY tenant_id HAVING count(*) > 1) SELECT * FROM x",
        );
        assert!(e.contains("HAVING"), "{e}");
    }

    #[test]
    fn group_by_keys_are_plain_columns() {
        let c =
            check_sql("SELECT tenant_id AS t, count(*) AS n FROM call_logs GROUP BY t").unwrap();
        assert!(c.sql.ends_with("GROUP BY tenant_id"), "{}", c.sql);
        let c = check_sql("SELECT tenant_id, count(*) AS n FROM call_logs GROUP BY 1").unwrap();
        assert!(c.sql.ends_with("GROUP BY tenant_id"), "{}", c.sql);
        // A real column keeps its meaning.
        let c =
            check_sql("SELECT call_id AS day, count(*) AS n FROM call_logs GROUP BY day").unwrap();
        assert!(c.sql.ends_with("GROUP BY day"), "{}", c.sql);
        for sql in [
            "SELECT calls > 100 AS big, count(*) AS n FROM tenant_daily GROUP BY calls > 100",
            "SELECT calls > 100 AS big, count(*) AS n FROM tenant_daily GROUP BY big",
            "SELECT calls > 100 AS big, count(*) AS n FROM tenant_daily GROUP BY 1",
        ] {
            assert!(refused(sql).contains("plain columns"), "{sql}");
        }
    }
}
