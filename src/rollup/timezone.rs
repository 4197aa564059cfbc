//! Tenant-local days. A call's day is the date of its `created_at` in its
//! tenant's IANA zone; a NULL, empty or unknown zone falls back to UTC.

use polars::prelude::*;

/// The canonical IANA name for `name`, matched case-insensitively as
/// PostgreSQL's `AT TIME ZONE` does, or None when it is not a zone.
pub fn canonical_zone(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return None;
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .map(|tz| tz.name())
}

/// Adds a Date column `day` holding the local date of the UTC timestamp
/// column `ts` in the zone named by column `zone` (canonical names only).
/// One vectorised conversion per distinct zone: a platform has tens of
/// zones and millions of calls.
pub fn with_local_day(df: DataFrame, ts: &str, zone: &str) -> PolarsResult<DataFrame> {
    if df.height() == 0 {
        return df
            .lazy()
            .with_column(lit(NULL).cast(DataType::Date).alias("day"))
            .collect();
    }
    let mut parts = Vec::new();
    for part in df.partition_by([zone], true)? {
        let name = part
            .column(zone)?
            .str()?
            .get(0)
            .unwrap_or("UTC")
            .to_string();
        let tz = TimeZone::opt_try_new(Some(name))?.unwrap_or(TimeZone::UTC);
        parts.push(
            part.lazy()
                .with_column(col(ts).dt().convert_time_zone(tz).dt().date().alias("day")),
        );
    }
    concat(parts, UnionArgs::default())?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_match_case_insensitively_and_reject_junk() {
        assert_eq!(canonical_zone("america/new_york"), Some("America/New_York"));
        assert_eq!(canonical_zone("Asia/Kathmandu"), Some("Asia/Kathmandu"));
        assert_eq!(canonical_zone("Mars/Olympus_Mons"), None);
        assert_eq!(canonical_zone(""), None);
    }
}
