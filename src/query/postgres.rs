//! Where DataFusion's answer would differ from Postgres', the engine is
//! taught Postgres' (docs/CONTRACT.md §6.3 lists each rule, and the query
//! corpus compares every one with Postgres):
//!
//! * a decimal or float cast to an integer rounds (half away from zero for
//!   numeric, half to even for double precision), where Arrow truncates;
//! * `round(double precision)` rounds half to even (Postgres' `rint`);
//! * a decimal divided (and `avg` of decimals) keeps at least 20 decimals,
//!   where DataFusion keeps the dividend's scale + 4 (money / money had 10:
//!   a cost per call off in the 11th digit); Postgres keeps at least 16
//!   significant digits, so the two agree to 1e-12 relative;
//! * `date_trunc` of a date is a time in UTC (Postgres: `timestamptz` at
//!   the session zone's midnight; `query`'s session zone is UTC), where
//!   DataFusion gave a time without a zone;
//! * a date plus or minus an interval is a time without a zone, as in
//!   Postgres (a date plus or minus an integer stays a date);
//! * `avg` of integers is a decimal (Postgres' numeric), so that rounding
//!   or casting it rounds as Postgres does;
//! * a float divided by zero is an error, as in Postgres (Arrow gave
//!   Infinity or NaN);
//! * `string_agg(DISTINCT x, …)` without ORDER BY orders by `x` (Postgres
//!   sorts a DISTINCT aggregate's input; DataFusion's order was a hash's).
//!
//! Refused, naming the construct, where no rewrite gives Postgres' answer:
//! `round(double precision, n)` (no such function in Postgres), times and
//! floats turned into text (Postgres' text differs), and `string_agg`,
//! `array_agg`, `percentile_cont`/`percentile_disc` as window functions
//! (their memory and time grow with the square of the partition).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ExprSchema, Result};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility, WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;

/// The fewest decimals a decimal quotient keeps.
const QUOTIENT_SCALE: i8 = 16;

/// The rule that gives Postgres' answers; it runs before type coercion,
/// so that the coercion sees the widened or rounded expressions and types
/// every parent to match.
pub fn analyzer_rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
    Arc::new(PostgresAnswers)
}

pub fn scalar_functions() -> Vec<ScalarUDF> {
    // Postgres' sign() is DataFusion's signum().
    let sign = datafusion::functions::math::signum()
        .as_ref()
        .clone()
        .with_aliases(["sign"]);
    let mut functions = vec![sign, at_time_zone()];
    functions.extend(super::extract::functions());
    functions.extend(super::capped::functions());
    functions
}

pub fn aggregate_functions() -> Vec<datafusion::logical_expr::AggregateUDF> {
    super::percentile::aggregates()
}

/// A function of doubles to a double: Postgres' `rint` (round half to
/// even) and its division, which refuses a zero divisor.
#[derive(Debug)]
struct DoubleFunction {
    name: &'static str,
    signature: Signature,
    compute: fn(&[&Float64Array]) -> Result<Float64Array>,
}

// One function per name: the name says which (function pointers do not
// compare meaningfully).
impl PartialEq for DoubleFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for DoubleFunction {}

impl std::hash::Hash for DoubleFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The internal names: not ones a query calls by chance.
const ROUND_HALF_EVEN: &str = "__callrollup_round_half_even";
const FLOAT_DIVIDE: &str = "__callrollup_float_divide";

fn rint(args: &[&Float64Array]) -> Result<Float64Array> {
    Ok(args[0].unary(f64::round_ties_even))
}

fn divide(args: &[&Float64Array]) -> Result<Float64Array> {
    let (a, b) = (args[0], args[1]);
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        if a.is_null(i) || b.is_null(i) {
            out.push(None);
        } else if b.value(i) == 0.0 {
            return datafusion::common::exec_err!("division by zero");
        } else {
            out.push(Some(a.value(i) / b.value(i)));
        }
    }
    Ok(Float64Array::from(out))
}

impl DoubleFunction {
    fn udf(
        name: &'static str,
        arity: usize,
        compute: fn(&[&Float64Array]) -> Result<Float64Array>,
    ) -> ScalarUDF {
        ScalarUDF::new_from_impl(DoubleFunction {
            name,
            signature: Signature::exact(vec![DataType::Float64; arity], Volatility::Immutable),
            compute,
        })
    }
}

impl ScalarUDFImpl for DoubleFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(&args.args)?;
        let doubles: Vec<&Float64Array> = arrays
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        Ok(ColumnarValue::Array(Arc::new((self.compute)(&doubles)?)))
    }
}

/// A call of a DoubleFunction, its arguments cast to double precision.
fn call_double(udf: ScalarUDF, args: Vec<Expr>) -> Expr {
    let args = args
        .into_iter()
        .map(|e| Expr::Cast(Cast::new(Box::new(e), DataType::Float64)))
        .collect();
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), args))
}

fn float_divide(a: Expr, b: Expr) -> Expr {
    call_double(DoubleFunction::udf(FLOAT_DIVIDE, 2, divide), vec![a, b])
}

fn round_half_even(expr: Expr) -> Expr {
    call_double(DoubleFunction::udf(ROUND_HALF_EVEN, 1, rint), vec![expr])
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

fn differs_as_text(t: &Option<DataType>) -> bool {
    matches!(
        t,
        Some(DataType::Timestamp(..) | DataType::Float64 | DataType::Float32 | DataType::Float16)
    )
}

fn refused(why: &str) -> Result<Transformed<Expr>> {
    datafusion::common::plan_err!("{why}")
}

/// DataFusion's own `round` (half away from zero for decimals).
fn round_decimal(expr: Expr) -> Expr {
    datafusion::functions::math::expr_fn::round(vec![expr])
}

/// The analyzer rule of the module, run before type coercion.
#[derive(Debug)]
struct PostgresAnswers;

impl AnalyzerRule for PostgresAnswers {
    fn name(&self) -> &str {
        "callrollup_postgres_answers"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node)?;
            // A rewritten aggregate keeps its name: the nodes above refer
            // to it by name.
            let names = NamePreserver::new(&node);
            let rewritten = node.map_expressions(|expr| {
                let saved = names.save(&expr);
                Ok(expr
                    .transform_up(|e| rewrite(e, &schema))?
                    .update_data(|e| saved.restore(e)))
            })?;
            // A child's schema may have changed too (a wider quotient).
            Ok(Transformed::yes(rewritten.data.recompute_schema()?))
        })
        .map(|t| t.data)
    }
}

/// The schema a node's expressions are evaluated against: its inputs'
/// columns (its own for a leaf).
fn input_schema(node: &LogicalPlan) -> Result<DFSchema> {
    let inputs = node.inputs();
    if inputs.is_empty() {
        return Ok(node.schema().as_ref().clone());
    }
    let mut schema = DFSchema::empty();
    for input in inputs {
        schema.merge(input.schema());
    }
    Ok(schema)
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer()
}

/// Casts a decimal dividend or average input to at least QUOTIENT_SCALE
/// decimals (a wider type never loses a digit).
fn widened(expr: Expr, t: &DataType) -> Option<Expr> {
    match t {
        DataType::Decimal128(_, scale) if *scale < QUOTIENT_SCALE => Some(Expr::Cast(Cast::new(
            Box::new(expr),
            DataType::Decimal128(38, QUOTIENT_SCALE),
        ))),
        t if t.is_integer() => Some(Expr::Cast(Cast::new(
            Box::new(expr),
            DataType::Decimal128(38, QUOTIENT_SCALE),
        ))),
        _ => None,
    }
}

/// What a value cast to an integer is rounded with first: Postgres rounds
/// numeric half away from zero and double precision half to even, where
/// Arrow truncates.
fn rounded_for_integer(inner: Expr, from: Option<DataType>) -> Transformed<Expr> {
    match from {
        Some(DataType::Decimal128(..) | DataType::Decimal256(..)) => {
            Transformed::yes(round_decimal(inner))
        }
        Some(DataType::Float64 | DataType::Float32 | DataType::Float16) => {
            Transformed::yes(round_half_even(inner))
        }
        _ => Transformed::no(inner),
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // Before type coercion a type may not be known yet: then no rewrite.
    let type_of = |e: &Expr| e.get_type(schema as &dyn ExprSchema).ok();
    match expr {
        // Times and floats as text: Postgres writes `2026-03-08 10:00:00+00`
        // and `1e+20` where Arrow writes RFC 3339 and `1e20`.
        Expr::Cast(Cast { expr: ref inner, ref field })
            if is_text(field.data_type()) && differs_as_text(&type_of(inner)) =>
        {
            refused("a time or a float cast to text: Postgres' text of it differs; select the value itself (times print as RFC 3339), or round a float to numeric first")
        }
        Expr::BinaryExpr(BinaryExpr { ref left, op: Operator::StringConcat, ref right })
            if differs_as_text(&type_of(left)) || differs_as_text(&type_of(right)) =>
        {
            refused("a time or a float joined to text with ||: Postgres' text of it differs; select the value itself")
        }
        // round(double precision, n) does not exist in Postgres.
        Expr::ScalarFunction(ref f)
            if f.func.name() == "round"
                && f.args.len() == 2
                && matches!(type_of(&f.args[0]), Some(DataType::Float64 | DataType::Float32)) =>
        {
            refused("round(double precision, n) does not exist in Postgres: round a numeric, e.g. round(x::numeric, 2)")
        }
        // A double divided by zero is Postgres' error.
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Divide, right })
            if matches!(type_of(&left), Some(DataType::Float64 | DataType::Float32))
                || matches!(type_of(&right), Some(DataType::Float64 | DataType::Float32)) =>
        {
            Ok(Transformed::yes(float_divide(*left, *right)))
        }
        // Postgres sorts a DISTINCT aggregate's input.
        Expr::AggregateFunction(mut f)
            if f.func.name() == "string_agg"
                && f.params.distinct
                && f.params.order_by.is_empty()
                && !f.params.args.is_empty() =>
        {
            let first = f.params.args[0].clone();
            f.params.order_by = vec![first.sort(true, false)];
            Ok(Transformed::yes(Expr::AggregateFunction(f)))
        }
        // A decimal or float cast to an integer rounds, as in Postgres.
        Expr::Cast(Cast { expr: inner, field }) if is_integer(field.data_type()) => {
            let from = type_of(&inner);
            Ok(rounded_for_integer(*inner, from)
                .map_data(|inner| Ok(Expr::Cast(Cast::new_from_field(Box::new(inner), field))))?)
        }
        Expr::TryCast(TryCast { expr: inner, field }) if is_integer(field.data_type()) => {
            let from = type_of(&inner);
            Ok(rounded_for_integer(*inner, from).map_data(|inner| {
                Ok(Expr::TryCast(TryCast::new_from_field(Box::new(inner), field)))
            })?)
        }
        // round(double precision) is rint: ties to even.
        Expr::ScalarFunction(f)
            if f.func.name() == "round"
                && f.args.len() == 1
                && type_of(&f.args[0]) == Some(DataType::Float64) =>
        {
            let arg = f.args.into_iter().next().expect("one argument");
            Ok(Transformed::yes(round_half_even(arg)))
        }
        // date_trunc of a date: a UTC time, as Postgres' timestamptz.
        Expr::ScalarFunction(mut f) if f.func.name() == "date_trunc" && f.args.len() == 2 => {
            let from_date = matches!(
                type_of(&f.args[1]),
                Some(DataType::Date32 | DataType::Date64)
            );
            if !from_date {
                return Ok(Transformed::no(Expr::ScalarFunction(f)));
            }
            let date = f.args.pop().expect("two arguments");
            f.args.push(Expr::Cast(Cast::new(
                Box::new(date),
                DataType::Timestamp(TimeUnit::Microsecond, Some(super::arrow::UTC.into())),
            )));
            Ok(Transformed::yes(Expr::ScalarFunction(f)))
        }
        // A decimal quotient keeps at least QUOTIENT_SCALE + 4 decimals.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) => {
            // Before coercion an integer divisor is still an integer:
            // money / count(*) is a decimal quotient too.
            let (lt, rt) = (type_of(&left), type_of(&right));
            let decimal = |t: &Option<DataType>| matches!(t, Some(DataType::Decimal128(..)));
            let exact =
                |t: &Option<DataType>| decimal(t) || t.as_ref().is_some_and(|t| t.is_integer());
            if (decimal(&lt) && exact(&rt)) || (exact(&lt) && decimal(&rt)) {
                if let Some(wide) = widened((*left).clone(), lt.as_ref().expect("a type")) {
                    return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(wide),
                        Operator::Divide,
                        right,
                    ))));
                }
            }
            Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                left,
                Operator::Divide,
                right,
            ))))
        }
        // A date plus or minus an interval (not an integer number of days)
        // is a time without a zone.
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: op @ (Operator::Plus | Operator::Minus),
            right,
        }) => {
            // Before coercion `day + 7` is still a date plus an integer.
            let (lt, rt) = (type_of(&left), type_of(&right));
            let date = |t: &Option<DataType>| matches!(t, Some(DataType::Date32));
            let interval = |t: &Option<DataType>| matches!(t, Some(DataType::Interval(_)));
            let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
            if date(&lt) && interval(&rt) {
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(Expr::Cast(Cast::new(left, naive))),
                    op,
                    right,
                ))));
            }
            if op == Operator::Plus && interval(&lt) && date(&rt) {
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                    left,
                    op,
                    Box::new(Expr::Cast(Cast::new(right, naive))),
                ))));
            }
            Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                left, op, right,
            ))))
        }
        // avg of decimals: as a decimal quotient.
        Expr::AggregateFunction(mut f) if f.func.name() == "avg" && f.params.args.len() == 1 => {
            // avg of integers too: Postgres' numeric, so that round() and
            // casts of it round as there.
            let t = type_of(&f.params.args[0]);
            match t.and_then(|t| widened(f.params.args[0].clone(), &t)) {
                Some(wide) => {
                    f.params.args[0] = wide;
                    Ok(Transformed::yes(Expr::AggregateFunction(f)))
                }
                None => Ok(Transformed::no(Expr::AggregateFunction(f))),
            }
        }
        Expr::WindowFunction(w)
            if matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(f)
                if ["string_agg", "array_agg", "percentile_cont", "percentile_disc"].contains(&f.name())) =>
        {
            refused("string_agg, array_agg and percentile_cont/disc are not run as window functions (their work grows with the square of the partition): aggregate with GROUP BY and join")
        }
        Expr::WindowFunction(mut w) => {
            let is_avg =
                matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(f) if f.name() == "avg");
            if is_avg && w.params.args.len() == 1 {
                let t = type_of(&w.params.args[0]);
                if let Some(wide) = t.and_then(|t| widened(w.params.args[0].clone(), &t)) {
                    w.params.args[0] = wide;
                    return Ok(Transformed::yes(Expr::WindowFunction(w)));
                }
            }
            Ok(Transformed::no(Expr::WindowFunction(w)))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// The function `x AT TIME ZONE zone` is planned as (the guard rewrites
/// the SQL): DataFusion casts to a zoned time, which prints the same UTC
/// instant; Postgres converts. A UTC time becomes the zone's wall-clock
/// time without a zone; a time without a zone is taken as the zone's wall
/// clock and becomes a UTC time (an ambiguous wall-clock time is read as
/// standard time and one in a spring-forward gap with the offset before
/// it, as Postgres does). An unknown zone is an error, as in Postgres.
pub const AT_TIME_ZONE: &str = "__callrollup_at_time_zone";

#[derive(Debug, PartialEq, Eq, Hash)]
struct AtTimeZone {
    signature: Signature,
}

fn micros(zone: Option<&str>) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, zone.map(Into::into))
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        AT_TIME_ZONE
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 2 {
            return datafusion::common::plan_err!("AT TIME ZONE takes a time and a zone");
        }
        let time = match &args[0] {
            DataType::Timestamp(_, Some(_)) => micros(Some(super::arrow::UTC)),
            DataType::Timestamp(_, None) | DataType::Date32 | DataType::Date64 => micros(None),
            other => {
                return datafusion::common::plan_err!("AT TIME ZONE needs a time, not {other}")
            }
        };
        Ok(vec![time, DataType::Utf8])
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match &args[0] {
            DataType::Timestamp(_, Some(_)) => micros(None),
            _ => micros(Some(super::arrow::UTC)),
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use chrono::{DateTime, LocalResult, Offset, TimeZone};
        use datafusion::arrow::array::TimestampMicrosecondArray;
        use datafusion::arrow::datatypes::TimestampMicrosecondType;
        let zoned_input = matches!(args.args[0].data_type(), DataType::Timestamp(_, Some(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let times = arrays[0].as_primitive::<TimestampMicrosecondType>();
        let zones = datafusion::arrow::compute::cast(&arrays[1], &DataType::Utf8)?;
        let zones = zones.as_string::<i32>();
        let mut last: Option<(String, chrono_tz::Tz)> = None;
        let mut out = Vec::with_capacity(times.len());
        for i in 0..times.len() {
            if times.is_null(i) || zones.is_null(i) {
                out.push(None);
                continue;
            }
            let name = zones.value(i);
            let zone = match &last {
                Some((n, z)) if n == name => *z,
                _ => {
                    // Case-insensitive, Postgres' abbreviations fixed: as
                    // the engine reads tenant zones.
                    let canonical =
                        crate::rollup::timezone::canonical_zone(name).ok_or_else(|| {
                            datafusion::error::DataFusionError::Execution(format!(
                            "time zone {:?} not recognized (an IANA name such as America/New_York)",
                            crate::text::printable(name)
                        ))
                        })?;
                    let z = crate::rollup::timezone::rules_of(canonical);
                    last = Some((name.to_string(), z));
                    z
                }
            };
            let value = times.value(i);
            let Some(instant) = DateTime::from_timestamp_micros(value) else {
                out.push(None);
                continue;
            };
            if zoned_input {
                let offset = zone.offset_from_utc_datetime(&instant.naive_utc()).fix();
                let local = instant
                    .naive_utc()
                    .checked_add_signed(chrono::Duration::seconds(i64::from(
                        offset.local_minus_utc(),
                    )));
                out.push(local.map(|l| l.and_utc().timestamp_micros()));
            } else {
                let wall = instant.naive_utc();
                let offset = match zone.offset_from_local_datetime(&wall) {
                    LocalResult::Single(o) => o.fix(),
                    // Standard time: the later instant, the smaller offset.
                    LocalResult::Ambiguous(a, b) => {
                        if a.fix().local_minus_utc() < b.fix().local_minus_utc() {
                            a.fix()
                        } else {
                            b.fix()
                        }
                    }
                    // In a gap: the offset in force before it.
                    LocalResult::None => {
                        let before = wall
                            .checked_sub_signed(chrono::Duration::hours(3))
                            .unwrap_or(wall);
                        zone.offset_from_utc_datetime(&before).fix()
                    }
                };
                let utc = wall.checked_sub_signed(chrono::Duration::seconds(i64::from(
                    offset.local_minus_utc(),
                )));
                out.push(utc.map(|u| u.and_utc().timestamp_micros()));
            }
        }
        let array = TimestampMicrosecondArray::from(out).with_timezone_opt(if zoned_input {
            None
        } else {
            Some(super::arrow::UTC)
        });
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

fn at_time_zone() -> ScalarUDF {
    ScalarUDF::new_from_impl(AtTimeZone {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}
