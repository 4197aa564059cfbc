//! `percentile_cont` and `percentile_disc` as Postgres computes them.
//!
//! DataFusion 55's `percentile_cont` quantizes the interpolation weight to
//! six decimals (p95 of durations gave 865.099999 where Postgres gives
//! 865.1) and it has no `percentile_disc`. Postgres: `percentile_cont(f)`
//! sorts the values as double precision and interpolates
//! `lo + (hi - lo) * (f * (n - 1) - floor(f * (n - 1)))`;
//! `percentile_disc(f)` is the value at position `ceil(f * n)` (at least
//! the first), of the input's type. NULLs are skipped; no values give
//! NULL. `WITHIN GROUP (ORDER BY x DESC)` reads the order backwards.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Continuous,
    Discrete,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Percentile {
    kind: Kind,
    signature: Signature,
}

/// The two ordered-set aggregates, replacing DataFusion's of the same name.
pub fn aggregates() -> Vec<AggregateUDF> {
    [Kind::Continuous, Kind::Discrete]
        .into_iter()
        .map(|kind| {
            AggregateUDF::new_from_impl(Percentile {
                kind,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

impl AggregateUDFImpl for Percentile {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Continuous => "percentile_cont",
            Kind::Discrete => "percentile_disc",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return plan_err!(
                "{}(fraction) WITHIN GROUP (ORDER BY value) takes one fraction",
                self.name()
            );
        }
        let value = &arg_types[0];
        let value = match self.kind {
            // Postgres: percentile_cont(double precision).
            Kind::Continuous if value.is_numeric() || value.is_null() => DataType::Float64,
            Kind::Continuous => return plan_err!("percentile_cont needs numbers, not {value}"),
            Kind::Discrete => value.clone(),
        };
        Ok(vec![value, DataType::Float64])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Continuous => DataType::Float64,
            Kind::Discrete => arg_types[0].clone(),
        })
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Field::new_list_field(args.input_fields[0].data_type().clone(), true);
        Ok(vec![Arc::new(Field::new(
            format!("{}_values", args.name),
            DataType::List(Arc::new(item)),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let fraction = match args
            .exprs
            .get(1)
            .and_then(|e| (e.as_ref() as &dyn std::any::Any).downcast_ref::<Literal>())
        {
            Some(literal) => match literal.value().cast_to(&DataType::Float64)? {
                ScalarValue::Float64(Some(f)) if (0.0..=1.0).contains(&f) => f,
                _ => return plan_err!("{}: the fraction must be between 0 and 1", self.name()),
            },
            None => return plan_err!("{}: the fraction must be a constant", self.name()),
        };
        let descending = args
            .order_bys
            .first()
            .map(|s| s.options.descending)
            .unwrap_or(false);
        Ok(Box::new(PercentileAccumulator {
            kind: self.kind,
            fraction,
            descending,
            value_type: args.expr_fields[0].data_type().clone(),
            values: Vec::new(),
            doubles: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct PercentileAccumulator {
    kind: Kind,
    fraction: f64,
    descending: bool,
    value_type: DataType,
    /// percentile_disc's values, of any ordered type.
    values: Vec<ScalarValue>,
    /// percentile_cont's values: doubles, 8 bytes each (a ScalarValue is
    /// 48: the p95 of 5 M durations took 680 MB).
    doubles: Vec<f64>,
}

impl PercentileAccumulator {
    fn take(&mut self, array: &dyn Array) -> Result<()> {
        if self.kind == Kind::Continuous {
            let doubles = datafusion::arrow::compute::cast(array, &DataType::Float64)?;
            let doubles = doubles.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            self.doubles.extend(doubles.iter().flatten());
            return Ok(());
        }
        for i in 0..array.len() {
            if array.is_valid(i) {
                self.values.push(ScalarValue::try_from_array(array, i)?);
            }
        }
        Ok(())
    }

    /// Postgres' interpolation over the sorted doubles.
    fn continuous(&mut self) -> ScalarValue {
        let n = self.doubles.len();
        if n == 0 {
            return ScalarValue::Float64(None);
        }
        self.doubles.sort_by(f64::total_cmp);
        if self.descending {
            self.doubles.reverse();
        }
        let position = self.fraction * (n - 1) as f64;
        let first = position.floor();
        let second = position.ceil();
        let lo = self.doubles[first as usize];
        if first == second {
            return ScalarValue::Float64(Some(lo));
        }
        let hi = self.doubles[second as usize];
        ScalarValue::Float64(Some(lo + (hi - lo) * (position - first)))
    }
}

impl Accumulator for PercentileAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.take(values[0].as_ref())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists: &ListArray = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                self.take(lists.value(i).as_ref())?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = if self.kind == Kind::Continuous {
            let doubles: Vec<ScalarValue> = self
                .doubles
                .iter()
                .map(|d| ScalarValue::Float64(Some(*d)))
                .collect();
            ScalarValue::new_list_nullable(&doubles, &DataType::Float64)
        } else {
            ScalarValue::new_list_nullable(&self.values, &self.value_type)
        };
        Ok(vec![ScalarValue::List(list)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.kind == Kind::Continuous {
            return Ok(self.continuous());
        }
        let n = self.values.len();
        if n == 0 {
            return ScalarValue::try_from(&self.value_type);
        }
        let mut unordered = false;
        self.values.sort_by(|a, b| {
            a.partial_cmp(b).unwrap_or_else(|| {
                unordered = true;
                std::cmp::Ordering::Equal
            })
        });
        if unordered {
            return exec_err!("percentile: values that cannot be ordered");
        }
        if self.descending {
            self.values.reverse();
        }
        let position = (self.fraction * n as f64).ceil().max(1.0) as usize;
        Ok(self.values[position.min(n) - 1].clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.iter().map(ScalarValue::size).sum::<usize>()
    }
}
