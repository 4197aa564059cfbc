//! callrollup generate — a synthetic platform, for benchmarks and tries.
//!
//! Usage: `callrollup generate --help`, from clap alone; docs/USAGE.md holds
//! every command's, and a test fails when it drifts from the parser.
//!
//! With a database: creates the platform tables (the test fixture's schema)
//! and loads them by binary COPY in one transaction; a database that
//! already holds platform tables is refused unless --replace. With
//! --snapshot: writes the same data as a Parquet snapshot that
//! `run --source` reads, no database needed. The same seed gives the same
//! data.

use crate::cli::generate::{Args, PlatformOpts};
use std::time::Instant;

use chrono::{NaiveDate, Utc};

use crate::error::{Error, Result};
use crate::generate::{Platform, Spec};
use crate::source::snapshot;
use crate::window::{last_complete_day, parse_date, Window};

/// Ten years of days; a billion calls, at most 20 million a day (a day is
/// generated in memory at once).
const MAX_DAYS: u64 = 3660;
const MAX_TENANTS: u64 = 1_000_000;
const MAX_CALLS: u64 = 1_000_000_000;
const MAX_CALLS_A_DAY: u64 = 20_000_000;
const MAX_TRANSCRIPT_BYTES: usize = 1 << 20;

impl PlatformOpts {
    /// The generator's parameters; `default_tenants` when --tenants is not given.
    pub fn spec(&self, default_tenants: usize) -> Result<Spec> {
        let tenants = self.tenants.unwrap_or(default_tenants);
        // Bounds that keep the date arithmetic and the allocations sane.
        let within = |flag: &str, value: u64, max: u64| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(Error::usage(format!(
                    "{flag} {value} is out of range: pick 1 to {max}"
                )))
            }
        };
        within("--days", u64::from(self.days), MAX_DAYS)?;
        within("--tenants", tenants as u64, MAX_TENANTS)?;
        within("--calls", self.calls.max(1) as u64, MAX_CALLS)?;
        if self.calls as u64 / u64::from(self.days) > MAX_CALLS_A_DAY {
            return Err(Error::usage(format!(
                "--calls {} over --days {} is more than {MAX_CALLS_A_DAY} calls a day: add days",
                self.calls, self.days
            )));
        }
        for (flag, bytes) in [
            ("--transcript-bytes", Some(self.transcript_bytes)),
            ("--summary-bytes", self.summary_bytes),
        ] {
            if bytes.is_some_and(|bytes| bytes > MAX_TRANSCRIPT_BYTES) {
                return Err(Error::usage(format!(
                    "{flag} {} is out of range: pick 0 to {MAX_TRANSCRIPT_BYTES}",
                    bytes.unwrap_or_default()
                )));
            }
        }
        let end: NaiveDate = match &self.end {
            Some(d) => parse_date("--end", d)?,
            None => last_complete_day(Utc::now()),
        };
        // Every call time, shifted by any zone, stays a date both chrono
        // and Postgres hold: the window lies within 1970..9999.
        let earliest = NaiveDate::from_ymd_opt(1970, 1, 2).expect("a date")
            + chrono::Days::new(u64::from(self.days));
        let latest = NaiveDate::from_ymd_opt(9999, 12, 30).expect("a date");
        if end < earliest || end > latest {
            return Err(Error::usage(format!(
                "--end {end} with --days {} puts the window outside 1970-01-02..9999-12-30: pick an --end from {earliest} to {latest}",
                self.days
            )));
        }
        if let Some(n) = self.zones {
            let max = crate::generate::Shape::max_zones();
            if n == 0 || n > max {
                return Err(Error::usage(format!("--zones must be between 1 and {max}")));
            }
        }
        if [self.statuses, self.outcomes, self.error_types]
            .iter()
            .any(|n| matches!(n, Some(0) | Some(1000..)))
        {
            return Err(Error::usage(
                "--statuses, --outcomes and --error-types must be between 1 and 999",
            ));
        }
        Ok(Spec {
            shape: crate::generate::Shape::new(
                self.zones,
                self.statuses,
                self.outcomes,
                self.error_types,
            ),
            tenants,
            calls: self.calls,
            days: self.days,
            end,
            seed: self.seed,
            transcript_bytes: self.transcript_bytes,
            summary_bytes: self.summary_bytes,
            quiet_weekends: self.quiet_weekends,
            injections: Vec::new(),
        })
    }
}

pub fn execute(args: Args) -> Result<()> {
    let mut spec = args.platform.spec(200)?;
    if let Some(path) = &args.inject_anomalies {
        let first = spec.end - chrono::Days::new(u64::from(spec.days - 1));
        spec.injections = crate::generate::injection_set(spec.seed, spec.tenants, first, spec.days);
        if spec.injections.is_empty() {
            return Err(Error::usage(format!(
                "--inject-anomalies needs more than 42 --days (five weeks of history first); {} given",
                spec.days
            )));
        }
        write_injections(path, &spec)?;
    }
    let platform = Platform::new(spec.clone());
    let started = Instant::now();
    if let Some(dir) = &args.snapshot {
        let window = Window {
            from: platform.first_day(),
            to: spec.end,
            partial: false,
        };
        let frames = platform.frames(&window)?;
        let fingerprint = format!(
            "generated:seed={},tenants={},calls={},days={},end={},zones={},statuses={},outcomes={},error_types={}",
            spec.seed,
            spec.tenants,
            spec.calls,
            spec.days,
            spec.end,
            spec.shape.zones.len(),
            spec.shape.statuses.len(),
            spec.shape.outcomes.len(),
            spec.shape.error_types.len()
        );
        let manifest = snapshot::write(dir, &frames, &window, &fingerprint, &Default::default())?;
        println!(
            "wrote snapshot {} ({}..{}): {} calls, {} errors, {} tenants in {:.1}s",
            dir.display(),
            manifest.window_from,
            manifest.window_to,
            frames.calls.height(),
            frames.errors.height(),
            frames.tenants.height(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if !args.database.has_source() {
        return Err(Error::usage(
            "pass --database-url (or --database-url-file, DATABASE_URL or PGHOST/PGDATABASE) or --snapshot DIR",
        ));
    }
    let url = args.database.source()?;
    let mut client = url.connect("callrollup-generate")?;
    let (calls, errors) = platform.load(&mut client, args.replace)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "loaded {} tenants, {calls} calls and {errors} errors for {}..{} into {url} in {seconds:.1}s ({:.0} calls/s)",
        spec.tenants,
        platform.first_day(),
        spec.end,
        calls as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// What `--inject-anomalies` put where, as CSV: the tenant (`platform`
/// for every tenant), the days, the kind, the component and the factor.
fn write_injections(path: &std::path::Path, spec: &crate::generate::Spec) -> Result<()> {
    let platform = Platform::new(spec.clone());
    let mut text = String::from("tenant_id,first_day,last_day,kind,component,factor\n");
    for injection in &spec.injections {
        let tenant = injection.tenant.map_or("platform".to_string(), |t| {
            platform.tenants[t].tenant_id.to_string()
        });
        let (kind, component, factor) = injection.describe();
        text.push_str(&format!(
            "{tenant},{},{},{kind},{component},{factor}\n",
            injection.first_day,
            injection.last_day()
        ));
    }
    crate::sink::files::write_whole(path, text.as_bytes())
}
