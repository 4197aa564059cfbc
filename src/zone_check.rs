//! Day boundaries agree with the database. The engine computes tenant
//! days from chrono-tz's compiled tzdata; Postgres (and every SQL a finance
//! or on-call person writes against it) from its own. Once per run, before
//! anything is written, one query checks that Postgres puts every day
//! boundary and offset change of the window, in every zone in use, on the
//! day the engine does, and that both know the same zone names.

use chrono::{DateTime, NaiveDate, Utc};
use postgres::Client;

use crate::error::{Error, Result};
use crate::rollup::timezone::{canonical_zone, day_probes, DayProbe};
use crate::sql;
use crate::window::Window;

/// Fails (exit 1) with the zone and the instant where the engine and the
/// database disagree. `declared` are the tenants' `timezone` values.
pub fn check(client: &mut Client, declared: &[Option<&str>], window: &Window) -> Result<()> {
    let mut names: Vec<&str> = declared
        .iter()
        .flatten()
        .copied()
        .filter(|z| !z.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    let engine_knows: Vec<bool> = names.iter().map(|z| canonical_zone(z).is_some()).collect();
    let mut zones: Vec<&'static str> = names.iter().filter_map(|z| canonical_zone(z)).collect();
    zones.push("UTC");
    zones.sort_unstable();
    zones.dedup();

    let (from, to) = window.utc_range();
    let probes: Vec<DayProbe> = zones
        .into_iter()
        .flat_map(|zone| day_probes(zone, from.timestamp_micros(), to.timestamp_micros()))
        .collect();
    let declared: Vec<(&str, bool)> = names.into_iter().zip(engine_knows).collect();
    verify(client, &probes, &declared)
}

/// Asks the database for the first disagreement with the engine's
/// `probes` and with the engine's view of the `declared` zone names
/// (name, whether the engine knows it).
pub fn verify(client: &mut Client, probes: &[DayProbe], declared: &[(&str, bool)]) -> Result<()> {
    let probe_zones: Vec<&str> = probes.iter().map(|p| p.zone).collect();
    let instants: Vec<DateTime<Utc>> = probes
        .iter()
        .map(|p| DateTime::from_timestamp_micros(p.at).unwrap_or_default())
        .collect();
    let days: Vec<NaiveDate> = probes.iter().map(|p| p.day).collect();
    let names: Vec<&str> = declared.iter().map(|(name, _)| *name).collect();
    let engine_knows: Vec<bool> = declared.iter().map(|(_, knows)| *knows).collect();
    let found = client.query(
        sql::ZONE_DAY_BOUNDARIES,
        &[&probe_zones, &instants, &days, &names, &engine_knows],
    )?;
    let Some(row) = found.first() else {
        return Ok(());
    };
    let zone: String = row.get("zone");
    let problem = if row.get::<_, &str>("kind") == "name" {
        if row.get::<_, bool>("engine_knows") {
            format!("time zone {zone:?} is an IANA zone for the engine but unknown to Postgres")
        } else {
            format!(
                "Postgres knows time zone {zone:?} but the engine does not (both treat abbreviations such as PST and POSIX strings as invalid)"
            )
        }
    } else {
        let at: DateTime<Utc> = row.get("at");
        let engine_day: NaiveDate = row.get("engine_day");
        let postgres_day: NaiveDate = row.get("postgres_day");
        format!(
            "in time zone {zone} the engine puts {} on {engine_day} but Postgres puts it on {postgres_day}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    };
    Err(Error::RunFailed(format!(
        "tenant days would differ from the database's: {problem}; nothing was written: update callrollup or the server's tzdata so both agree, or correct the tenant's timezone"
    )))
}
