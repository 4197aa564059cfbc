//! `repeat`, `lpad` and `rpad` with a bound on the text they make: each
//! row's value may be up to 2 GiB in DataFusion, outside the memory pool
//! (`repeat(tenant_id, 50000000)` per row ends in the OOM killer). A
//! length or count beyond `MAX_LENGTH` is an error; the work is
//! DataFusion's own function.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// The longest text (characters, or repetitions × length) these may make.
pub const MAX_LENGTH: i64 = 100_000;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: Arc<ScalarUDF>,
    /// Which argument is the length or the count.
    length_arg: usize,
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(args)
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(length) = args.args.get(self.length_arg) {
            let lengths = datafusion::arrow::compute::cast(
                &length.to_array(args.number_rows.max(1))?,
                &DataType::Int64,
            )?;
            let lengths = lengths.as_primitive::<Int64Type>();
            // For repeat, the text's own length multiplies the count.
            let widest = if self.length_arg == 1 && self.inner.name() == "repeat" {
                let text = args.args[0].to_array(args.number_rows.max(1))?;
                let text = datafusion::arrow::compute::cast(&text, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                (0..text.len())
                    .filter(|&i| text.is_valid(i))
                    .map(|i| text.value(i).chars().count() as i64)
                    .max()
                    .unwrap_or(0)
                    .max(1)
            } else {
                1
            };
            for i in 0..lengths.len() {
                if lengths.is_valid(i) && lengths.value(i).saturating_mul(widest) > MAX_LENGTH {
                    return exec_err!(
                        "{}: a text of more than {MAX_LENGTH} characters",
                        self.inner.name()
                    );
                }
            }
        }
        self.inner.invoke_with_args(args)
    }
}

/// The capped functions, replacing DataFusion's of the same names.
pub fn functions() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    [
        (string::repeat(), 1),
        (unicode::lpad(), 1),
        (unicode::rpad(), 1),
    ]
    .into_iter()
    .map(|(inner, length_arg)| ScalarUDF::new_from_impl(Capped { inner, length_arg }))
    .collect()
}
