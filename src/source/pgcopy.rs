//! PostgreSQL's binary COPY format, decoded straight into Polars columns.
//!
//! `COPY (SELECT …) TO STDOUT (FORMAT binary)` is the fastest way Postgres
//! hands over rows: no per-value text formatting on the server and no
//! parsing here. Each value lands in its column's buffer as it is read.
//! Low-cardinality text (tenant ids, statuses, outcomes, error types) goes
//! through a per-column dictionary: every distinct value is stored once and
//! each row is a 16-byte string view into that one buffer, so millions of
//! calls cost no per-row string at all.
//!
//! Format reference: <https://www.postgresql.org/docs/current/sql-copy.html>
//! (binary format) and `numeric.c` (the numeric send format).

use std::io::Read;
use std::sync::Arc;

use polars::prelude::*;
use polars_arrow::array::{BooleanArray, MutableBinaryViewArray, Utf8ViewArray, View};
use polars_arrow::bitmap::{Bitmap, MutableBitmap};
use polars_arrow::buffer::Buffer;
use polars_arrow::datatypes::ArrowDataType;

/// Money columns are decoded to this many decimals (the engine's
/// Decimal(38,10)); a value with more is refused rather than rounded.
pub use crate::frames::MONEY_SCALE;

/// Microseconds between the Unix epoch and Postgres' 2000-01-01.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// 2000-01-01, Postgres' day zero, in days since 1970-01-01.
const POSTGRES_EPOCH_DAYS: i32 = 10_957;

/// The longest field Postgres can send (1 GB, its own limit on a value):
/// a longer length can only come from a corrupt stream, and is refused
/// before anything is allocated for it.
pub const MAX_FIELD_BYTES: usize = 1 << 30;

/// The longest header extension accepted (Postgres sends none today).
pub const MAX_HEADER_EXTENSION_BYTES: usize = 1 << 20;

pub use crate::frames::FieldKind;

/// Why a COPY stream could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The reader stopped the stream (a memory limit, a stop signal): the
    /// reason is its own.
    #[error("the read was stopped")]
    Stopped,
    #[error("the COPY stream is not in PostgreSQL's binary format ({0})")]
    Format(String),
    #[error("column {column}: {problem}")]
    Value {
        column: &'static str,
        problem: String,
    },
}

/// Decodes a whole binary COPY stream whose rows have exactly `columns`.
pub fn read_frame(
    reader: impl Read,
    columns: &[(&'static str, FieldKind)],
) -> Result<DataFrame, DecodeError> {
    let mut builders: Vec<Builder> = columns
        .iter()
        .map(|(name, kind)| Builder::new(name, *kind))
        .collect();
    for_each_field(reader, columns.len(), |i, value| match value {
        Some(bytes) => builders[i].push(bytes),
        None => {
            builders[i].push_null();
            Ok(())
        }
    })?;
    let columns = builders
        .into_iter()
        .map(|b| b.finish().into_column())
        .collect();
    DataFrame::new(columns).map_err(|e| DecodeError::Format(e.to_string()))
}

/// Hands every field of a binary COPY stream whose rows have `width`
/// fields to `each` (its column and its bytes, None for NULL), in order,
/// without keeping any.
pub fn for_each_field(
    reader: impl Read,
    width: usize,
    mut each: impl FnMut(usize, Option<&[u8]>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut input = Input::new(reader);
    input.header()?;
    loop {
        let fields = i16::from_be_bytes(input.take::<2>()?);
        if fields == -1 {
            return Ok(());
        }
        if fields as usize != width {
            return Err(DecodeError::Format(format!(
                "a row has {fields} fields, expected {width}"
            )));
        }
        for i in 0..width {
            match i32::from_be_bytes(input.take::<4>()?) {
                -1 => each(i, None)?,
                len if len < 0 => {
                    return Err(DecodeError::Format(format!(
                        "a field length of {len} (only -1, NULL, is negative)"
                    )))
                }
                len if len as usize > MAX_FIELD_BYTES => {
                    return Err(DecodeError::Format(format!(
                        "a field length of {len} bytes, beyond Postgres' 1 GB"
                    )))
                }
                len => each(i, Some(input.bytes(len as usize)?))?,
            }
        }
    }
}

/// A buffered reader that hands out byte slices of the stream.
struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Input {
            inner,
            buf: vec![0; 1 << 18],
            start: 0,
            end: 0,
        }
    }

    /// Makes at least `n` bytes available from `start`.
    #[inline(always)]
    fn fill(&mut self, n: usize) -> Result<(), DecodeError> {
        if self.end - self.start >= n {
            return Ok(());
        }
        self.refill(n)
    }

    /// `fill` when the buffer runs out: once per 256 kB, not per field.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, n: usize) -> Result<(), DecodeError> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < n {
            // Grows with the bytes that actually arrive, so a length that a
            // truncated or hostile stream claims allocates nothing up front.
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).min(n.next_power_of_two());
                self.buf.resize(grown, 0);
            }
            let read = self.inner.read(&mut self.buf[self.end..])?;
            if read == 0 {
                return Err(DecodeError::Format("the stream ended mid-row".into()));
            }
            self.end += read;
        }
        Ok(())
    }

    #[inline(always)]
    fn bytes(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        self.fill(n)?;
        let out = &self.buf[self.start..self.start + n];
        self.start += n;
        Ok(out)
    }

    #[inline(always)]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.bytes(N)?;
        Ok(bytes.try_into().expect("N bytes"))
    }

    /// Signature, flags and the header extension, which is skipped.
    fn header(&mut self) -> Result<(), DecodeError> {
        const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
        if &self.take::<11>()? != SIGNATURE {
            return Err(DecodeError::Format("bad signature".into()));
        }
        let flags = u32::from_be_bytes(self.take::<4>()?);
        if flags & (1 << 16) != 0 {
            return Err(DecodeError::Format("OIDs are included".into()));
        }
        // Bits 0-15 mark incompatible changes of the format: a reader
        // must stop. Bits 17-31 are compatible ones and are ignored.
        if flags & 0xFFFF != 0 {
            return Err(DecodeError::Format(format!(
                "unknown header flags {:#06x}",
                flags & 0xFFFF
            )));
        }
        let extension = u32::from_be_bytes(self.take::<4>()?) as usize;
        if extension > MAX_HEADER_EXTENSION_BYTES {
            return Err(DecodeError::Format(format!(
                "a header extension of {extension} bytes"
            )));
        }
        self.bytes(extension)?;
        Ok(())
    }
}

/// Nulls as Arrow wants them: no bitmap when every value is set.
fn validity(bits: MutableBitmap) -> Option<Bitmap> {
    let bits: Bitmap = bits.into();
    (bits.unset_bits() > 0).then_some(bits)
}

/// Distinct values stored once; each row is a view into them.
struct Dictionary {
    index: DictionaryIndex,
    /// The raw bytes of the last value looked up and its view: rows often
    /// repeat the value before them (a status, an outcome, a severity), and
    /// one comparison then replaces a hash and a probe.
    last_raw: Vec<u8>,
    last_view: Option<View>,
    buffer: Vec<u8>,
    views: Vec<View>,
    valid: MutableBitmap,
    total_bytes: usize,
}

/// The views of the distinct values, by their raw bytes as sent.
enum DictionaryIndex {
    Text(PlHashMap<Box<[u8]>, View>),
    /// A uuid's 16 bytes as one integer: no key allocation, no memcmp.
    Uuid(PlHashMap<u128, View>),
}

impl Dictionary {
    fn new(uuid: bool) -> Dictionary {
        Dictionary {
            index: if uuid {
                DictionaryIndex::Uuid(PlHashMap::new())
            } else {
                DictionaryIndex::Text(PlHashMap::new())
            },
            last_raw: Vec::new(),
            last_view: None,
            buffer: Vec::new(),
            views: Vec::new(),
            valid: MutableBitmap::new(),
            total_bytes: 0,
        }
    }

    fn view_of(&mut self, raw: &[u8], column: &'static str) -> Result<View, DecodeError> {
        // A uuid column (tenant ids) rarely repeats the row before, and
        // its index is a plain integer lookup: no copy, no compare.
        if matches!(self.index, DictionaryIndex::Uuid(_)) {
            return self.lookup(raw, column);
        }
        if let Some(view) = self.last_view {
            if raw == self.last_raw.as_slice() {
                return Ok(view);
            }
        }
        let view = self.lookup(raw, column)?;
        self.last_raw.clear();
        self.last_raw.extend_from_slice(raw);
        self.last_view = Some(view);
        Ok(view)
    }

    fn lookup(&mut self, raw: &[u8], column: &'static str) -> Result<View, DecodeError> {
        match &mut self.index {
            DictionaryIndex::Uuid(index) => {
                let key = uuid_u128(raw, column)?;
                if let Some(view) = index.get(&key) {
                    return Ok(*view);
                }
                let text = uuid::Uuid::from_u128(key).hyphenated().to_string();
                let view = store(&mut self.buffer, &text, column)?;
                index.insert(key, view);
                Ok(view)
            }
            DictionaryIndex::Text(index) => {
                if let Some(view) = index.get(raw) {
                    return Ok(*view);
                }
                let text = utf8(raw, column)?;
                let view = store(&mut self.buffer, text, column)?;
                index.insert(raw.into(), view);
                Ok(view)
            }
        }
    }

    fn finish(self, name: &str) -> Series {
        let buffers: Arc<[Buffer<u8>]> = Arc::from([Buffer::from(self.buffer)]);
        let buffer_len = buffers[0].len();
        // SAFETY: every view was made by `View::new_from_bytes` from valid
        // UTF-8 (`str::from_utf8` or a formatted UUID) and points inside
        // buffer 0 at the offset where those bytes were appended.
        let array = unsafe {
            Utf8ViewArray::new_unchecked(
                ArrowDataType::Utf8View,
                self.views.into(),
                buffers,
                validity(self.valid),
                self.total_bytes,
                buffer_len,
            )
        };
        StringChunked::with_chunk(name.into(), array).into_series()
    }
}

/// Appends a new distinct value to a dictionary's buffer (unless it fits
/// inline in its view) and returns its view.
fn store(buffer: &mut Vec<u8>, text: &str, column: &'static str) -> Result<View, DecodeError> {
    let offset = u32::try_from(buffer.len()).map_err(|_| DecodeError::Value {
        column,
        problem: "too many distinct values".into(),
    })?;
    let view = View::new_from_bytes(text.as_bytes(), 0, offset);
    if text.len() > View::MAX_INLINE_SIZE as usize {
        buffer.extend_from_slice(text.as_bytes());
    }
    Ok(view)
}

enum Values {
    Text(MutableBinaryViewArray<str>),
    Dictionary(Dictionary),
    Money(Vec<i128>, MutableBitmap),
    Int8(Vec<i64>, MutableBitmap),
    TimestampTz(Vec<i64>, MutableBitmap),
    Bool(MutableBitmap, MutableBitmap),
    Date(Vec<i32>, MutableBitmap),
    Float8(Vec<f64>, MutableBitmap),
}

struct Builder {
    name: &'static str,
    values: Values,
}

impl Builder {
    fn new(name: &'static str, kind: FieldKind) -> Builder {
        let dictionary = |uuid| Values::Dictionary(Dictionary::new(uuid));
        let values = match kind {
            FieldKind::Text => Values::Text(MutableBinaryViewArray::new()),
            FieldKind::DictionaryText => dictionary(false),
            FieldKind::DictionaryUuid => dictionary(true),
            FieldKind::Money => Values::Money(Vec::new(), MutableBitmap::new()),
            FieldKind::Int8 => Values::Int8(Vec::new(), MutableBitmap::new()),
            FieldKind::TimestampTz => Values::TimestampTz(Vec::new(), MutableBitmap::new()),
            FieldKind::Bool => Values::Bool(MutableBitmap::new(), MutableBitmap::new()),
            FieldKind::Date => Values::Date(Vec::new(), MutableBitmap::new()),
            FieldKind::Float8 => Values::Float8(Vec::new(), MutableBitmap::new()),
        };
        Builder { name, values }
    }

    fn push_null(&mut self) {
        match &mut self.values {
            Values::Text(a) => a.push_null(),
            Values::Dictionary(d) => {
                d.views.push(View::default());
                d.valid.push(false);
            }
            Values::Money(v, valid) => {
                v.push(0);
                valid.push(false);
            }
            Values::Int8(v, valid) | Values::TimestampTz(v, valid) => {
                v.push(0);
                valid.push(false);
            }
            Values::Bool(v, valid) => {
                v.push(false);
                valid.push(false);
            }
            Values::Date(v, valid) => {
                v.push(0);
                valid.push(false);
            }
            Values::Float8(v, valid) => {
                v.push(0.0);
                valid.push(false);
            }
        }
    }

    fn push(&mut self, raw: &[u8]) -> Result<(), DecodeError> {
        let column = self.name;
        match &mut self.values {
            Values::Text(a) => a.push_value(utf8(raw, column)?),
            Values::Dictionary(d) => {
                let view = d.view_of(raw, column)?;
                d.total_bytes += view.length as usize;
                d.views.push(view);
                d.valid.push(true);
            }
            Values::Money(v, valid) => {
                v.push(
                    numeric_to_scaled(raw, MONEY_SCALE)
                        .map_err(|problem| DecodeError::Value { column, problem })?,
                );
                valid.push(true);
            }
            Values::Int8(v, valid) => {
                v.push(bigint(raw, column)?);
                valid.push(true);
            }
            Values::TimestampTz(v, valid) => {
                v.push(timestamptz_micros(raw, column)?);
                valid.push(true);
            }
            Values::Bool(v, valid) => {
                v.push(boolean(raw, column)?);
                valid.push(true);
            }
            Values::Date(v, valid) => {
                let bytes: [u8; 4] = raw
                    .try_into()
                    .map_err(|_| wrong_size(column, "date", raw))?;
                // Postgres counts days from 2000-01-01; ±infinity stay at the ends.
                v.push(i32::from_be_bytes(bytes).saturating_add(POSTGRES_EPOCH_DAYS));
                valid.push(true);
            }
            Values::Float8(v, valid) => {
                let bytes: [u8; 8] = raw
                    .try_into()
                    .map_err(|_| wrong_size(column, "double precision", raw))?;
                v.push(f64::from_be_bytes(bytes));
                valid.push(true);
            }
        }
        Ok(())
    }

    fn finish(self) -> Series {
        let name: PlSmallStr = self.name.into();
        match self.values {
            Values::Text(a) => {
                let array: Utf8ViewArray = a.into();
                StringChunked::with_chunk(name, array).into_series()
            }
            Values::Dictionary(d) => d.finish(self.name),
            Values::Money(v, valid) => Int128Chunked::from_vec_validity(name, v, validity(valid))
                .into_decimal_unchecked(Some(crate::frames::MONEY_PRECISION), MONEY_SCALE as usize)
                .into_series(),
            Values::Int8(v, valid) => {
                Int64Chunked::from_vec_validity(name, v, validity(valid)).into_series()
            }
            Values::TimestampTz(v, valid) => {
                Int64Chunked::from_vec_validity(name, v, validity(valid))
                    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                    .into_series()
            }
            Values::Bool(v, valid) => {
                let array = BooleanArray::new(ArrowDataType::Boolean, v.into(), validity(valid));
                BooleanChunked::with_chunk(name, array).into_series()
            }
            Values::Date(v, valid) => Int32Chunked::from_vec_validity(name, v, validity(valid))
                .into_date()
                .into_series(),
            Values::Float8(v, valid) => {
                Float64Chunked::from_vec_validity(name, v, validity(valid)).into_series()
            }
        }
    }
}

/// A `text` value's bytes as UTF-8 text.
pub fn utf8<'a>(raw: &'a [u8], column: &'static str) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(raw).map_err(|e| DecodeError::Value {
        column,
        problem: e.to_string(),
    })
}

/// A `uuid` in the send format (16 bytes) as one integer.
pub fn uuid_u128(raw: &[u8], column: &'static str) -> Result<u128, DecodeError> {
    let bytes: [u8; 16] = raw
        .try_into()
        .map_err(|_| wrong_size(column, "uuid", raw))?;
    Ok(u128::from_be_bytes(bytes))
}

/// A `bigint` in the send format.
pub fn bigint(raw: &[u8], column: &'static str) -> Result<i64, DecodeError> {
    let bytes: [u8; 8] = raw
        .try_into()
        .map_err(|_| wrong_size(column, "bigint", raw))?;
    Ok(i64::from_be_bytes(bytes))
}

/// A `boolean` in the send format.
pub fn boolean(raw: &[u8], column: &'static str) -> Result<bool, DecodeError> {
    let [byte]: [u8; 1] = raw
        .try_into()
        .map_err(|_| wrong_size(column, "boolean", raw))?;
    Ok(byte != 0)
}

fn wrong_size(column: &'static str, what: &str, raw: &[u8]) -> DecodeError {
    DecodeError::Value {
        column,
        problem: format!("a {what} value of {} bytes", raw.len()),
    }
}

/// A `timestamptz` in the send format as Unix microseconds (±infinity
/// stay at the far ends of the i64 range).
pub fn timestamptz_micros(raw: &[u8], column: &'static str) -> Result<i64, DecodeError> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| DecodeError::Value {
        column,
        problem: format!("a timestamptz value of {} bytes", raw.len()),
    })?;
    Ok(i64::from_be_bytes(bytes).saturating_add(POSTGRES_EPOCH_MICROS))
}

/// 10^0 ..= 10^38, the powers an i128 holds: a table, not a `pow` per
/// digit (20 million money values on a 5 M-call window).
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// A numeric in Postgres' send format as an integer count of 10^-scale:
/// `ndigits, weight, sign, dscale` (i16/u16) and then base-10000 digits,
/// the first one worth 10000^weight. Refuses NaN, infinities, values with
/// more than `scale` decimals and values beyond 38 digits.
pub fn numeric_to_scaled(raw: &[u8], scale: u32) -> Result<i128, String> {
    // The exponent arithmetic below stays far inside i32 for these.
    debug_assert!(scale <= 38, "a scale of {scale}");
    if raw.len() < 8 {
        return Err(format!("a numeric value of {} bytes", raw.len()));
    }
    let word = |i: usize| u16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
    let ndigits = word(0) as usize;
    let weight = word(1) as i16 as i32;
    let sign = word(2);
    if raw.len() != 8 + 2 * ndigits {
        return Err(format!(
            "a numeric value of {} bytes with {ndigits} digits",
            raw.len()
        ));
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 | 0xD000 | 0xF000 => return Err("NaN or infinity is not an amount of money".into()),
        other => return Err(format!("a numeric with unknown sign flags {other:#06x}")),
    };
    let overflow = || "a value beyond 38 digits".to_string();
    let digit = |i: usize| -> Result<u64, String> {
        let digit = word(4 + i);
        if digit >= 10_000 {
            return Err(format!(
                "a numeric digit {digit} (base-10000 digits are below 10000)"
            ));
        }
        Ok(u64::from(digit))
    };
    let value: i128 = if ndigits <= 4 {
        // Money has at most four base-10000 digits (up to 16 decimal
        // digits, e.g. 12345678.123456): they make one integer, scaled
        // once, instead of an i128 product per digit (numeric decoding
        // was 7 % of a run's instructions). The last digit is worth
        // 10000^(weight - ndigits + 1), i.e. 10^exponent units of 10^-scale.
        let mut mantissa: u64 = 0;
        for i in 0..ndigits {
            mantissa = mantissa * 10_000 + digit(i)?;
        }
        if mantissa == 0 {
            return Ok(0);
        }
        let exponent = 4 * (weight - ndigits as i32 + 1) + scale as i32;
        let mantissa = i128::from(mantissa);
        if (0..=22).contains(&exponent) {
            // Below 10^16 · 10^22 = 10^38: a plain product, which cannot
            // overflow (a checked i128 product is a call into the runtime).
            mantissa * POW10[exponent as usize]
        } else if exponent > 22 {
            POW10
                .get(exponent as usize)
                .and_then(|p| mantissa.checked_mul(*p))
                .ok_or_else(overflow)?
        } else {
            match POW10.get(exponent.unsigned_abs() as usize) {
                Some(divisor) if mantissa % divisor == 0 => mantissa / divisor,
                _ => return Err(format!("a value with more than {scale} decimals")),
            }
        }
    } else {
        let mut value: i128 = 0;
        for i in 0..ndigits {
            let digit = i128::from(digit(i)?);
            // A zero digit adds nothing wherever it stands (as in the
            // fast path above).
            if digit == 0 {
                continue;
            }
            // This digit is worth 10^(4·(weight − i)); in units of 10^-scale
            // that is 10^(4·(weight − i) + scale).
            let exponent = 4 * (weight - i as i32) + scale as i32;
            let part = if exponent >= 0 {
                POW10
                    .get(exponent as usize)
                    .and_then(|p| digit.checked_mul(*p))
                    .ok_or_else(overflow)?
            } else {
                let divisor = POW10[(-exponent).min(4) as usize];
                if exponent < -4 || digit % divisor != 0 {
                    return Err(format!("a value with more than {scale} decimals"));
                }
                digit / divisor
            };
            value = value.checked_add(part).ok_or_else(overflow)?;
        }
        value
    };
    // A frame's Decimal(38, 10) holds 38 digits; i128 reaches 39 (found
    // by the property test against rust_decimal: -10^28 at 10 decimals).
    if value >= POW10[38] {
        return Err(overflow());
    }
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The send format of a numeric from its parts.
    fn numeric(weight: i16, negative: bool, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend((if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        out.extend(dscale.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_decode_exactly_to_ten_decimals() {
        // 12.345678 = 12 . 3456 78(00)
        let v = numeric_to_scaled(&numeric(0, false, 6, &[12, 3456, 7800]), 10).unwrap();
        assert_eq!(v, 123_456_780_000);
        // -0.000001 = weight -2, digit 0100
        let v = numeric_to_scaled(&numeric(-2, true, 6, &[100]), 10).unwrap();
        assert_eq!(v, -10_000);
        // 123456789 = 1 2345 6789
        let v = numeric_to_scaled(&numeric(2, false, 0, &[1, 2345, 6789]), 10).unwrap();
        assert_eq!(v, 123_456_789 * 10i128.pow(10));
        // zero has no digits
        assert_eq!(numeric_to_scaled(&numeric(0, false, 2, &[]), 10), Ok(0));
        // 0.0000000001 (10 decimals) fits; 0.00000000001 does not
        assert_eq!(
            numeric_to_scaled(&numeric(-3, false, 10, &[100]), 10),
            Ok(1)
        );
        assert!(numeric_to_scaled(&numeric(-3, false, 11, &[10]), 10).is_err());
        assert!(numeric_to_scaled(&numeric(-4, false, 13, &[1000]), 10).is_err());
        // Zero digits add nothing wherever they stand, in either path:
        // 10000^6 at weight 8 after two zero digits, a lone zero far out.
        assert_eq!(
            numeric_to_scaled(&numeric(8, false, 0, &[0, 0, 1]), 10),
            Ok(10i128.pow(34))
        );
        assert_eq!(numeric_to_scaled(&numeric(8, false, 0, &[0]), 10), Ok(0));
        assert_eq!(
            numeric_to_scaled(&numeric(8, false, 0, &[0, 0, 1, 0, 0]), 10),
            Ok(10i128.pow(34))
        );
        // NaN
        let mut nan = numeric(0, false, 0, &[]);
        nan[4] = 0xC0;
        assert!(numeric_to_scaled(&nan, 10).is_err());
        // 10^40 overflows
        assert!(numeric_to_scaled(&numeric(10, false, 0, &[1]), 10).is_err());
    }

    #[test]
    fn a_stream_decodes_into_typed_columns() {
        let mut stream = b"PGCOPY\n\xff\r\n\0".to_vec();
        stream.extend(0u32.to_be_bytes());
        stream.extend(0u32.to_be_bytes());
        let field = |out: &mut Vec<u8>, bytes: Option<&[u8]>| match bytes {
            Some(b) => {
                out.extend((b.len() as i32).to_be_bytes());
                out.extend(b);
            }
            None => out.extend((-1i32).to_be_bytes()),
        };
        let tenant = uuid::Uuid::parse_str("6f1c2b0e-8d6a-4c1e-9b7a-2f3d4e5f6a7b").unwrap();
        for (id, status, cost) in [("c1", Some("completed"), Some(1.5)), ("c2", None, None)] {
            stream.extend(5i16.to_be_bytes());
            field(&mut stream, Some(id.as_bytes()));
            field(&mut stream, Some(tenant.as_bytes()));
            field(&mut stream, status.map(str::as_bytes));
            let cost = cost.map(|_| numeric(0, false, 1, &[1, 5000]));
            field(&mut stream, cost.as_deref());
            field(&mut stream, Some(&0i64.to_be_bytes()));
        }
        stream.extend((-1i16).to_be_bytes());
        let df = read_frame(
            &stream[..],
            &[
                ("call_id", FieldKind::Text),
                ("tenant_id", FieldKind::DictionaryUuid),
                ("status", FieldKind::DictionaryText),
                ("cost", FieldKind::Money),
                ("created_at", FieldKind::TimestampTz),
            ],
        )
        .unwrap();
        assert_eq!(df.height(), 2);
        let tenants: Vec<_> = df
            .column("tenant_id")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(tenants, [Some(tenant.to_string().as_str()); 2]);
        let status: Vec<_> = df.column("status").unwrap().str().unwrap().iter().collect();
        assert_eq!(status, [Some("completed"), None]);
        let cost = df.column("cost").unwrap().decimal().unwrap();
        assert_eq!(cost.physical().get(0), Some(15_000_000_000));
        assert_eq!(cost.physical().get(1), None);
        let at = df.column("created_at").unwrap().datetime().unwrap();
        assert_eq!(at.physical().get(0), Some(POSTGRES_EPOCH_MICROS));
        // A truncated stream is an error, not a short frame.
        let truncated = &stream[..stream.len() - 5];
        assert!(read_frame(truncated, &[("call_id", FieldKind::Text)]).is_err());
    }

    #[test]
    fn dates_and_doubles_decode_as_postgres_sends_them() {
        let mut stream = b"PGCOPY\n\xff\r\n\0".to_vec();
        stream.extend(0u32.to_be_bytes());
        stream.extend(0u32.to_be_bytes());
        // 2026-03-08 is day 9563 after 2000-01-01; then a NULL row.
        stream.extend(2i16.to_be_bytes());
        stream.extend(4i32.to_be_bytes());
        stream.extend(9563i32.to_be_bytes());
        stream.extend(8i32.to_be_bytes());
        stream.extend(0.25f64.to_be_bytes());
        stream.extend(2i16.to_be_bytes());
        stream.extend((-1i32).to_be_bytes());
        stream.extend((-1i32).to_be_bytes());
        stream.extend((-1i16).to_be_bytes());
        let df = read_frame(
            &stream[..],
            &[("day", FieldKind::Date), ("error_rate", FieldKind::Float8)],
        )
        .unwrap();
        let day = df.column("day").unwrap().date().unwrap();
        let expected = chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(day.physical().get(0), Some(expected.num_days() as i32));
        assert_eq!(day.physical().get(1), None);
        let rate = df.column("error_rate").unwrap().f64().unwrap();
        assert_eq!(rate.get(0), Some(0.25));
        assert_eq!(rate.get(1), None);
        // A date of the wrong width is refused, naming the column.
        let mut short = stream.clone();
        short[21..25].copy_from_slice(&3i32.to_be_bytes());
        assert!(read_frame(
            &short[..],
            &[("day", FieldKind::Date), ("error_rate", FieldKind::Float8)]
        )
        .is_err());
    }

    mod properties {
        use super::super::*;
        use postgres::types::{FromSql, ToSql, Type};
        use proptest::prelude::*;
        use rust_decimal::Decimal;

        /// rust_decimal's own send format of a value.
        fn sent(value: Decimal) -> Vec<u8> {
            let mut out = bytes::BytesMut::new();
            value.to_sql(&Type::NUMERIC, &mut out).unwrap();
            out.to_vec()
        }

        fn header() -> Vec<u8> {
            let mut stream = b"PGCOPY\n\xff\r\n\0".to_vec();
            stream.extend(0u32.to_be_bytes());
            stream.extend(0u32.to_be_bytes());
            stream
        }

        const COLUMNS: &[(&str, FieldKind)] = &[
            ("call_id", FieldKind::Text),
            ("tenant_id", FieldKind::DictionaryUuid),
            ("cost", FieldKind::Money),
            ("at", FieldKind::TimestampTz),
            ("n", FieldKind::Int8),
            ("ok", FieldKind::Bool),
        ];

        /// One row of COLUMNS: call_id, tenant_id, cost, at, n, ok.
        type Row = (String, [u8; 16], Decimal, i64, i64, bool);

        /// A well-formed stream of `rows` rows of COLUMNS.
        fn valid_stream(rows: &[Row]) -> Vec<u8> {
            let mut stream = header();
            let field = |out: &mut Vec<u8>, bytes: &[u8]| {
                out.extend((bytes.len() as i32).to_be_bytes());
                out.extend(bytes);
            };
            for (id, tenant, cost, at, n, ok) in rows {
                stream.extend(6i16.to_be_bytes());
                field(&mut stream, id.as_bytes());
                field(&mut stream, tenant);
                field(&mut stream, &sent(*cost));
                field(&mut stream, &at.to_be_bytes());
                field(&mut stream, &n.to_be_bytes());
                field(&mut stream, &[u8::from(*ok)]);
            }
            stream.extend((-1i16).to_be_bytes());
            stream
        }

        fn decimal() -> impl Strategy<Value = Decimal> {
            // Up to 10^17 at up to 10 decimals: what a frame's Decimal(38,10)
            // and rust_decimal's 96 bits both hold.
            (
                -100_000_000_000_000_000i64..100_000_000_000_000_000,
                0u32..=10,
            )
                .prop_map(|(m, scale)| Decimal::new(m, scale))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn numerics_decode_as_rust_decimal_reads_them(m in any::<i128>(), scale in 0u32..=28) {
                // Any value rust_decimal can send (96-bit mantissa, scale <= 28).
                let value = Decimal::from_i128_with_scale(m % (1i128 << 96), scale);
                let raw = sent(value);
                let theirs = Decimal::from_sql(&Type::NUMERIC, &raw).unwrap();
                // Theirs in units of 10^-10, when that is an exact i128.
                let normal = theirs.normalize();
                let expected = (normal.scale() <= MONEY_SCALE)
                    .then(|| 10i128.checked_pow(MONEY_SCALE - normal.scale()))
                    .flatten()
                    .and_then(|p| normal.mantissa().checked_mul(p))
                    .filter(|v| v.unsigned_abs() < 10u128.pow(38));
                match (numeric_to_scaled(&raw, MONEY_SCALE), expected) {
                    (Ok(ours), Some(expected)) => prop_assert_eq!(ours, expected),
                    // Refused exactly when it has more than 10 decimals or
                    // more than 38 digits at that scale.
                    (Err(_), None) => {}
                    (ours, expected) => prop_assert!(false, "{ours:?} vs {expected:?}"),
                }
            }

            #[test]
            fn numerics_with_ten_decimals_or_fewer_are_exact(value in decimal()) {
                let ours = numeric_to_scaled(&sent(value), MONEY_SCALE).unwrap();
                let expected = value.mantissa() * 10i128.pow(MONEY_SCALE - value.scale());
                prop_assert_eq!(ours, expected);
            }

            #[test]
            fn any_numeric_bytes_decode_or_fail_without_panicking(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
                let _ = numeric_to_scaled(&raw, MONEY_SCALE);
            }

            #[test]
            fn any_byte_stream_decodes_or_fails_without_panicking(
                tail in proptest::collection::vec(any::<u8>(), 0..256),
                with_header in any::<bool>(),
            ) {
                let mut stream = if with_header { header() } else { Vec::new() };
                stream.extend(tail);
                let _ = read_frame(&stream[..], COLUMNS);
            }

            #[test]
            fn a_valid_stream_round_trips_and_every_truncation_is_an_error(
                rows in proptest::collection::vec(
                    ("[a-zA-Z0-9]{0,12}", any::<[u8; 16]>(), decimal(), any::<i64>(), any::<i64>(), any::<bool>()),
                    0..6,
                ),
                cut in any::<prop::sample::Index>(),
                flip in any::<prop::sample::Index>(),
                byte in any::<u8>(),
            ) {
                let stream = valid_stream(&rows);
                let df = read_frame(&stream[..], COLUMNS).unwrap();
                prop_assert_eq!(df.height(), rows.len());
                let costs = crate::money::decimals(df.column("cost").unwrap()).unwrap();
                for (got, row) in costs.iter().zip(&rows) {
                    prop_assert_eq!(got.unwrap().normalize(), row.2.normalize());
                }
                let short = cut.index(stream.len());
                prop_assert!(read_frame(&stream[..short], COLUMNS).is_err());
                // A corrupted byte decodes to something or fails; never a panic.
                let mut corrupt = stream.clone();
                let at = flip.index(corrupt.len());
                corrupt[at] = byte;
                let _ = read_frame(&corrupt[..], COLUMNS);
            }
        }

        #[test]
        fn hostile_lengths_are_errors_before_any_allocation() {
            for len in [-2i32, i32::MIN, (MAX_FIELD_BYTES as i32).saturating_add(1)] {
                let mut stream = header();
                stream.extend(1i16.to_be_bytes());
                stream.extend(len.to_be_bytes());
                let e = read_frame(&stream[..], &[("call_id", FieldKind::Text)]).unwrap_err();
                assert_length_error(&e.to_string());
            }
            // A length that fits but whose bytes never come: an error, not a 1 GB buffer.
            let mut stream = header();
            stream.extend(1i16.to_be_bytes());
            stream.extend(((MAX_FIELD_BYTES - 1) as i32).to_be_bytes());
            assert!(read_frame(&stream[..], &[("call_id", FieldKind::Text)]).is_err());
            // Header: an unknown critical flag bit, or a huge extension.
            let mut flags = b"PGCOPY\n\xff\r\n\0".to_vec();
            flags.extend(1u32.to_be_bytes());
            flags.extend(0u32.to_be_bytes());
            assert!(read_frame(&flags[..], &[])
                .unwrap_err()
                .to_string()
                .contains("flags"));
            let mut extension = b"PGCOPY\n\xff\r\n\0".to_vec();
            extension.extend(0u32.to_be_bytes());
            extension.extend(u32::MAX.to_be_bytes());
            assert!(read_frame(&extension[..], &[]).is_err());
            // A compatible flag bit (17-31) is ignored.
            let mut compatible = b"PGCOPY\n\xff\r\n\0".to_vec();
            compatible.extend((1u32 << 20).to_be_bytes());
            compatible.extend(0u32.to_be_bytes());
            compatible.extend((-1i16).to_be_bytes());
            assert_eq!(read_frame(&compatible[..], &[]).unwrap().height(), 0);
        }

        fn assert_length_error(message: &str) {
            assert!(message.contains("field length"), "{message}");
        }

        #[test]
        fn numeric_digits_of_10000_or_more_and_unknown_signs_are_errors() {
            let numeric = |sign: u16, digit: u16| {
                let mut raw = Vec::new();
                for word in [1u16, 0, sign, 0, digit] {
                    raw.extend(word.to_be_bytes());
                }
                raw
            };
            assert!(numeric_to_scaled(&numeric(0, 10_000), 10)
                .unwrap_err()
                .contains("digit"));
            assert!(numeric_to_scaled(&numeric(0x1234, 1), 10)
                .unwrap_err()
                .contains("sign"));
            assert!(numeric_to_scaled(&numeric(0xC000, 0), 10)
                .unwrap_err()
                .contains("NaN"));
            assert_eq!(
                numeric_to_scaled(&numeric(0x4000, 9_999), 10),
                Ok(-9_999 * 10i128.pow(10))
            );
        }
    }
}
