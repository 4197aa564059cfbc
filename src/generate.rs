//! A synthetic voice-agent platform, deterministic for a seed: tenants over
//! real IANA zones, business-hour calls in each tenant's local time,
//! realistic status and outcome mixes, micro-dollar costs with a few NULL
//! components and surcharged totals, errors of several types (some
//! platform-level, some for calls that do not exist, some logged days
//! later) and one injected incident: a burst of one error type for a few
//! tenants on one day.
//!
//! The data is produced one day at a time so that memory stays bounded for
//! any size; each day has its own random stream, so a day's rows do not
//! depend on how many days came before.

use chrono::{Days, NaiveDate, NaiveTime, TimeZone as _};
use chrono_tz::Tz;
use polars::prelude::*;
use uuid::Uuid;

/// Zones the tenants live in: the Americas, Europe, India, Australia, and
/// the half- and quarter-hour offsets that catch naive code.
pub const ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Paris",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Perth",
];

/// More zones for `--zones N` beyond the built-in ones: both hemispheres'
/// DST, the odd offsets (−03:30, +03:30, +05:45, +08:45, +10:30 with a
/// half-hour DST, +12:45, +13, +14, −11) and zones that dropped DST.
pub const MORE_ZONES: &[&str] = &[
    "America/St_Johns",
    "America/Santiago",
    "America/Halifax",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Pacific/Pago_Pago",
    "Pacific/Kiritimati",
    "Pacific/Chatham",
    "Pacific/Auckland",
    "Pacific/Tongatapu",
    "Australia/Lord_Howe",
    "Australia/Eucla",
    "Asia/Tehran",
    "Asia/Kabul",
    "Asia/Yangon",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Dubai",
    "Africa/Casablanca",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Europe/Dublin",
    "Atlantic/Azores",
    "America/Bogota",
    "America/Argentina/Buenos_Aires",
    "America/Phoenix",
    "Etc/GMT+12",
];

/// Which zones, statuses, outcomes and error types the data uses: the
/// built-in sets, or more of each for testing and measuring on other
/// shapes of data (`generate --zones 30 --error-types 16 ...`).
#[derive(Debug, Clone)]
pub struct Shape {
    pub zones: Vec<&'static str>,
    pub statuses: Vec<(&'static str, u32)>,
    pub outcomes: Vec<(&'static str, u32)>,
    pub error_types: Vec<(&'static str, u32)>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            zones: ZONES.to_vec(),
            statuses: STATUSES.to_vec(),
            outcomes: OUTCOMES.to_vec(),
            error_types: ERROR_TYPES.to_vec(),
        }
    }
}

/// The first `n` of `built_in`, then made-up names `{stem}_NN` with falling
/// weights. The names live as long as the process (a few dozen strings).
fn widened(built_in: &[(&'static str, u32)], n: usize, stem: &str) -> Vec<(&'static str, u32)> {
    let mut out: Vec<(&'static str, u32)> = built_in.iter().take(n).copied().collect();
    for i in out.len()..n {
        let name: &'static str = Box::leak(format!("{stem}_{:02}", i + 1).into_boxed_str());
        out.push((name, (40 / (i as u32 + 1)).max(1)));
    }
    out
}

impl Shape {
    /// `None` keeps the built-in set. At most the built-in and extra zones.
    pub fn new(
        zones: Option<usize>,
        statuses: Option<usize>,
        outcomes: Option<usize>,
        error_types: Option<usize>,
    ) -> Shape {
        let default = Shape::default();
        Shape {
            zones: match zones {
                Some(n) => ZONES
                    .iter()
                    .chain(MORE_ZONES)
                    .take(n.max(1))
                    .copied()
                    .collect(),
                None => default.zones,
            },
            statuses: statuses.map_or(default.statuses, |n| widened(STATUSES, n.max(1), "status")),
            outcomes: outcomes.map_or(default.outcomes, |n| widened(OUTCOMES, n.max(1), "outcome")),
            error_types: error_types.map_or(default.error_types, |n| {
                widened(ERROR_TYPES, n.max(1), "error_type")
            }),
        }
    }

    /// How many zones there are to choose from.
    pub fn max_zones() -> usize {
        ZONES.len() + MORE_ZONES.len()
    }
}

const NAME_FIRST: &[&str] = &[
    "Acme",
    "Bright",
    "Cedar",
    "Summit",
    "Harbor",
    "Maple",
    "Pioneer",
    "Golden",
    "Blue Ridge",
    "Riverside",
    "Lakeside",
    "Evergreen",
    "Northstar",
    "Oak",
    "Silver",
    "Union",
];
const NAME_SECOND: &[&str] = &[
    "Dental",
    "Plumbing",
    "Law",
    "Vets",
    "Realty",
    "Auto Repair",
    "Clinic",
    "HVAC",
    "Salon",
    "Insurance",
    "Roofing",
    "Physio",
    "Pizza",
    "Movers",
    "Spa",
    "Tutoring",
];

pub const STATUSES: &[(&str, u32)] = &[
    ("completed", 70),
    ("no-answer", 12),
    ("failed", 8),
    ("busy", 6),
    ("in-progress", 4),
];
pub const OUTCOMES: &[(&str, u32)] = &[
    ("booked", 30),
    ("callback", 20),
    ("not_interested", 22),
    ("voicemail", 10),
    ("information", 13),
    ("transferred", 5),
];
pub const ERROR_TYPES: &[(&str, u32)] = &[
    ("stt_timeout", 30),
    ("llm_error", 20),
    ("tts_error", 15),
    ("webhook_failed", 20),
    ("telephony_drop", 15),
];
pub const SEVERITIES: &[(&str, u32)] = &[("WARNING", 45), ("ERROR", 45), ("CRITICAL", 10)];

/// The injected incident's error type.
pub const INCIDENT_ERROR_TYPE: &str = "llm_error";

/// SplitMix64: tiny, fast, and the same numbers on every platform forever.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn weighted<'a>(&mut self, table: &[(&'a str, u32)]) -> &'a str {
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        let mut pick = self.below(u64::from(total)) as u32;
        for (v, w) in table {
            if pick < *w {
                return v;
            }
            pick -= w;
        }
        table[table.len() - 1].0
    }

    pub fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub tenants: usize,
    pub calls: usize,
    pub days: u32,
    /// The last generated day (tenant-local dates run up to it).
    pub end: NaiveDate,
    pub seed: u64,
    /// Length of each generated transcript (the engine never reads it).
    pub transcript_bytes: usize,
    /// Length of each generated summary (None: a short sentence).
    pub summary_bytes: Option<usize>,
    /// Zones, statuses, outcomes and error types.
    pub shape: Shape,
    /// Quiet weekends: weekdays get 1.2 times a day's calls, Saturdays
    /// and Sundays half (the same calls a week), as a business line rings.
    pub quiet_weekends: bool,
    /// Cost anomalies put into the data (`generate --inject-anomalies`,
    /// and the demo's one).
    pub injections: Vec<Injection>,
}

/// A cost anomaly put into the generated data.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// The tenant (an index into `Platform::tenants`); None: every tenant
    /// (a provider's price change).
    pub tenant: Option<usize>,
    pub first_day: NaiveDate,
    pub days: u32,
    pub change: Change,
}

/// What an injection changes, by a factor in thousandths (1500: ×1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// One cost component of every call (0 STT, 1 LLM, 2 TTS), the total
    /// with it.
    UnitCost { component: usize, permille: i64 },
    /// The tenant's calls: each one repeated (`permille` 2000: twice as many).
    Volume { permille: i64 },
}

impl Injection {
    pub fn covers(&self, tenant: usize, day: NaiveDate) -> bool {
        self.tenant.is_none_or(|t| t == tenant)
            && day >= self.first_day
            && day < self.first_day + Days::new(u64::from(self.days))
    }

    pub fn last_day(&self) -> NaiveDate {
        self.first_day + Days::new(u64::from(self.days.max(1) - 1))
    }

    /// `unit_cost`/`volume`, the component (`total` for volume) and the factor.
    pub fn describe(&self) -> (&'static str, &'static str, String) {
        let factor = |p: i64| format!("{}", p as f64 / 1000.0);
        match self.change {
            Change::UnitCost {
                component,
                permille,
            } => (
                "unit_cost",
                ["stt", "llm", "tts"][component.min(2)],
                factor(permille),
            ),
            Change::Volume { permille } => ("volume", "total", factor(permille)),
        }
    }
}

/// A seeded set of anomalies over `days` days from `first`, for measuring
/// detection: one every third day (after five weeks of history), each a
/// tenant among the 50 or the 300 largest (half each) with one of LLM ×1.5, ×2, ×3, STT ×2,
/// TTS ×1.5 for one to three days or twice its calls for a day; and one
/// provider price change (TTS ×1.5 for every tenant) from two thirds of
/// the way on. No tenant gets two at once.
pub fn injection_set(seed: u64, tenants: usize, first: NaiveDate, days: u32) -> Vec<Injection> {
    const KINDS: [Change; 6] = [
        Change::UnitCost {
            component: 1,
            permille: 1500,
        },
        Change::UnitCost {
            component: 1,
            permille: 2000,
        },
        Change::UnitCost {
            component: 1,
            permille: 3000,
        },
        Change::UnitCost {
            component: 0,
            permille: 2000,
        },
        Change::UnitCost {
            component: 2,
            permille: 1500,
        },
        Change::Volume { permille: 2000 },
    ];
    const HISTORY: u32 = 35;
    let mut out: Vec<Injection> = Vec::new();
    if days <= HISTORY + 7 {
        return out;
    }
    let mut rng = Rng::new(seed ^ 0x5EED_A40A_11E5);
    let count = days / 3;
    let mut tries = 0;
    while out.len() < count as usize && tries < count * 20 {
        tries += 1;
        let change = KINDS[out.len() % KINDS.len()];
        let length = match change {
            Change::Volume { .. } => 1,
            _ => 1 + rng.below(3) as u32,
        };
        let injection = Injection {
            // Half among the 50 largest (the tenants of 50 calls a day
            // and more, where recall is measured), half among the 300.
            tenant: Some(
                rng.below(tenants.min(if tries % 2 == 0 { 50 } else { 300 }) as u64) as usize,
            ),
            first_day: first
                + Days::new(u64::from(HISTORY) + rng.below(u64::from(days - HISTORY - 3))),
            days: length,
            change,
        };
        // Apart from the tenant's other injections by two weeks, so each
        // is measured against a baseline of its own.
        let clash = out.iter().any(|o| {
            o.tenant == injection.tenant
                && (o.first_day - injection.first_day).num_days().abs() < 21
        });
        if !clash {
            out.push(injection);
        }
    }
    let change_day = first + Days::new(u64::from(days) * 2 / 3);
    out.push(Injection {
        tenant: None,
        first_day: change_day,
        days: days - days * 2 / 3,
        change: Change::UnitCost {
            component: 2,
            permille: 1500,
        },
    });
    out
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub tenant_id: Uuid,
    pub business_name: String,
    /// None for the few tenants whose zone was never set.
    pub timezone: Option<&'static str>,
    pub status: &'static str,
    /// Relative call volume.
    pub weight: f64,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub call_id: String,
    pub tenant: usize,
    pub status: &'static str,
    pub outcome: Option<&'static str>,
    /// Micro-dollars: stt, llm, tts, total.
    pub costs: [Option<i64>; 4],
    pub duration_seconds: Option<i32>,
    pub created_at_us: i64,
    pub errored: bool,
}

#[derive(Debug, Clone)]
pub struct SystemError {
    /// None: platform-level.
    pub tenant: Option<usize>,
    pub call_id: Option<String>,
    pub error_type: &'static str,
    pub severity: &'static str,
    pub resolved: bool,
    pub created_at_us: i64,
}

/// One generated day.
pub struct Day {
    pub calls: Vec<Call>,
    pub errors: Vec<SystemError>,
}

pub struct Platform {
    pub spec: Spec,
    pub tenants: Vec<Tenant>,
    /// Cumulative weights for picking a tenant.
    cumulative: Vec<f64>,
    pub incident_day: NaiveDate,
    pub incident_tenants: Vec<usize>,
}

impl Platform {
    pub fn new(spec: Spec) -> Platform {
        let mut rng = Rng::new(spec.seed);
        let tenants: Vec<Tenant> = (0..spec.tenants.max(1))
            .map(|i| {
                let first = NAME_FIRST[rng.below(NAME_FIRST.len() as u64) as usize];
                let second = NAME_SECOND[rng.below(NAME_SECOND.len() as u64) as usize];
                Tenant {
                    tenant_id: rng.uuid(),
                    business_name: format!("{first} {second} #{}", i + 1),
                    // One tenant in fifty never set its zone: the UTC fallback.
                    timezone: (i % 50 != 49).then(|| {
                        spec.shape.zones[rng.below(spec.shape.zones.len() as u64) as usize]
                    }),
                    status: if rng.chance(0.9) {
                        "active"
                    } else {
                        "inactive"
                    },
                    // A long tail: a few large tenants, many small ones.
                    weight: 1.0 / (1.0 + i as f64).powf(0.8),
                }
            })
            .collect();
        let mut acc = 0.0;
        let cumulative = tenants
            .iter()
            .map(|t| {
                acc += t.weight;
                acc
            })
            .collect();
        let incident_day = spec.end - Days::new(u64::from(spec.days / 3));
        let incident_tenants = (0..tenants.len().min(3))
            .map(|i| (i * 7 + 2) % tenants.len())
            .collect();
        Platform {
            spec,
            tenants,
            cumulative,
            incident_day,
            incident_tenants,
        }
    }

    pub fn first_day(&self) -> NaiveDate {
        self.spec.end - Days::new(u64::from(self.spec.days.max(1) - 1))
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.first_day()
            .iter_days()
            .take(self.spec.days.max(1) as usize)
    }

    fn pick_tenant(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().expect("at least one tenant");
        let x = rng.unit() * total;
        self.cumulative
            .partition_point(|c| *c <= x)
            .min(self.tenants.len() - 1)
    }

    /// The calls and errors of one tenant-local day.
    pub fn day(&self, day: NaiveDate) -> Day {
        let index = (day - self.first_day()).num_days() as u64;
        let mut rng =
            Rng::new(self.spec.seed ^ (index.wrapping_add(1)).wrapping_mul(0xA24B_AED4_963E_E407));
        let per_day = self.spec.calls / self.spec.days.max(1) as usize;
        let extra =
            usize::from((index as usize) < self.spec.calls % self.spec.days.max(1) as usize);
        let count = per_day + extra;
        // Quiet weekends: the same calls a week, fewer on Saturdays and Sundays.
        let count = if self.spec.quiet_weekends {
            use chrono::Datelike;
            match day.weekday().number_from_monday() {
                6 | 7 => count / 2,
                _ => count * 6 / 5,
            }
        } else {
            count
        };
        let mut calls = Vec::with_capacity(count);
        let mut errors = Vec::with_capacity(count / 10);
        for n in 0..count {
            let tenant = self.pick_tenant(&mut rng);
            let created_at_us = self.business_hours_instant(&mut rng, tenant, day);
            let status = rng.weighted(&self.spec.shape.statuses);
            let outcome = match status {
                "completed" if rng.chance(0.95) => Some(rng.weighted(&self.spec.shape.outcomes)),
                "completed" => None,
                "in-progress" => None,
                _ => Some("no_contact"),
            };
            let duration = match status {
                "in-progress" => None,
                "completed" => Some(30 + (rng.unit().powi(2) * 900.0) as i32),
                "failed" => Some(rng.below(40) as i32),
                _ => Some(0),
            };
            let seconds = i64::from(duration.unwrap_or(0));
            // Micro-dollars: STT by the second, LLM by the turn, TTS by the character.
            let mut stt = Some(seconds * 267 + rng.below(500) as i64);
            let mut llm = Some(seconds * 1_150 + 2_000 + rng.below(20_000) as i64);
            let mut tts = Some(seconds * 410 + rng.below(800) as i64);
            let surcharge = if rng.chance(0.02) { 10_000 } else { 0 };
            let total = Some(stt.unwrap_or(0) + llm.unwrap_or(0) + tts.unwrap_or(0) + surcharge);
            if rng.chance(0.01) {
                match rng.below(3) {
                    0 => stt = None,
                    1 => llm = None,
                    _ => tts = None,
                }
            }
            let call_id = format!("CA{:016x}{:016x}", rng.next_u64(), n as u64 ^ (index << 40));
            let mut errored = false;
            if rng.chance(0.06) {
                errored = true;
                let burst = if rng.chance(0.2) { 2 + rng.below(3) } else { 1 };
                for k in 0..burst {
                    // Most errors are logged during the call; some days later.
                    let later = if rng.chance(0.05) {
                        86_400_000_000 * (1 + rng.below(3) as i64)
                    } else {
                        0
                    };
                    errors.push(SystemError {
                        tenant: Some(tenant),
                        call_id: Some(call_id.clone()),
                        error_type: rng.weighted(&self.spec.shape.error_types),
                        severity: rng.weighted(SEVERITIES),
                        resolved: rng.chance(0.6),
                        created_at_us: created_at_us + (k as i64 + 1) * 5_000_000 + later,
                    });
                }
            }
            calls.push(Call {
                call_id,
                tenant,
                status,
                outcome,
                costs: [stt, llm, tts, total],
                duration_seconds: duration,
                created_at_us,
                errored,
            });
        }
        // Platform-level errors and errors for calls that never existed.
        let day_start = day.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
        for k in 0..(count / 200).max(2) {
            let at = day_start + rng.below(86_400_000_000) as i64;
            let platform = k % 2 == 0;
            errors.push(SystemError {
                tenant: (!platform).then(|| self.pick_tenant(&mut rng)),
                call_id: (!platform).then(|| format!("ghost-{:016x}", rng.next_u64())),
                error_type: if platform {
                    "queue_backlog"
                } else {
                    "webhook_failed"
                },
                severity: rng.weighted(SEVERITIES),
                resolved: rng.chance(0.5),
                created_at_us: at,
            });
        }
        if day == self.incident_day {
            for &tenant in &self.incident_tenants {
                for _ in 0..(40 + count / 100) {
                    errors.push(SystemError {
                        tenant: Some(tenant),
                        call_id: None,
                        error_type: INCIDENT_ERROR_TYPE,
                        severity: "CRITICAL",
                        resolved: false,
                        created_at_us: self.business_hours_instant(&mut rng, tenant, day),
                    });
                }
            }
        }
        self.inject(day, index, &mut calls);
        Day { calls, errors }
    }

    /// Applies the spec's injections of `day` to its calls: volume first
    /// (a tenant's calls repeated), then unit costs (the repeats too).
    fn inject(&self, day: NaiveDate, index: u64, calls: &mut Vec<Call>) {
        let today: Vec<&Injection> = self
            .spec
            .injections
            .iter()
            .filter(|i| day >= i.first_day && day <= i.last_day())
            .collect();
        if today.is_empty() {
            return;
        }
        let mut rng = Rng::new(self.spec.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x1A);
        for injection in &today {
            let Change::Volume { permille } = injection.change else {
                continue;
            };
            let originals: Vec<Call> = calls
                .iter()
                .filter(|c| injection.covers(c.tenant, day))
                .cloned()
                .collect();
            for (n, call) in originals.iter().enumerate() {
                // (permille − 1000) / 1000 repeats a call, on average.
                let mut repeats = (permille - 1000) / 1000;
                if rng.below(1000) < ((permille - 1000) % 1000) as u64 {
                    repeats += 1;
                }
                for k in 0..repeats {
                    let mut copy = call.clone();
                    copy.call_id = format!("{}r{k}n{n}", call.call_id);
                    copy.created_at_us += 1 + k;
                    copy.errored = false;
                    calls.push(copy);
                }
            }
        }
        for injection in &today {
            let Change::UnitCost {
                component,
                permille,
            } = injection.change
            else {
                continue;
            };
            for call in calls.iter_mut().filter(|c| injection.covers(c.tenant, day)) {
                if let Some(cost) = call.costs[component] {
                    let changed = cost * permille / 1000;
                    call.costs[component] = Some(changed);
                    call.costs[3] = call.costs[3].map(|t| t + changed - cost);
                }
            }
        }
    }

    /// A moment on `day` in the tenant's zone, mostly 08:00–18:00 local.
    fn business_hours_instant(&self, rng: &mut Rng, tenant: usize, day: NaiveDate) -> i64 {
        let hour = if rng.chance(0.9) {
            8 + rng.below(10)
        } else {
            rng.below(24)
        } as u32;
        let second = rng.below(3600) as u32;
        let local = day
            .and_time(NaiveTime::from_hms_opt(hour, second / 60, second % 60).expect("valid time"));
        let zone: Tz = self.tenants[tenant]
            .timezone
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        // In a spring-forward gap the local time does not exist: an hour later does.
        let instant = zone
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                zone.from_local_datetime(&(local + chrono::TimeDelta::hours(1)))
                    .earliest()
            })
            .expect("an hour after a DST gap exists");
        instant.timestamp_micros() + rng.below(1_000_000) as i64
    }
}

/// How many different texts of each kind a platform's calls share.
const TEXT_POOL: usize = 256;

/// `count` texts of `bytes` bytes each, written as a conversation: lines
/// drawn at random, so that Postgres compresses a long one about as it
/// compresses real talk (a repeated phrase would shrink 50:1 and leave
/// the heap narrow whatever its length). The engine never reads them.
fn conversation_texts(bytes: usize, count: usize, seed: u64) -> Vec<String> {
    const SPEAKERS: [&str; 2] = ["Agent", "Caller"];
    const WORDS: [&str; 48] = [
        "thanks",
        "for",
        "calling",
        "how",
        "can",
        "I",
        "help",
        "today",
        "book",
        "a",
        "visit",
        "on",
        "Tuesday",
        "morning",
        "afternoon",
        "is",
        "there",
        "anything",
        "earlier",
        "my",
        "name",
        "number",
        "address",
        "please",
        "confirm",
        "the",
        "appointment",
        "at",
        "nine",
        "thirty",
        "sorry",
        "could",
        "you",
        "repeat",
        "that",
        "cancel",
        "reschedule",
        "next",
        "week",
        "Friday",
        "price",
        "quote",
        "order",
        "delivery",
        "refund",
        "account",
        "yes",
        "no",
    ];
    let mut rng = Rng::new(seed ^ 0x7E47);
    (0..count)
        .map(|_| {
            let mut text = String::with_capacity(bytes + 16);
            let mut speaker = 0;
            while text.len() < bytes {
                text.push_str(SPEAKERS[speaker]);
                text.push(':');
                for _ in 0..4 + rng.next_u64() % 12 {
                    text.push(' ');
                    text.push_str(WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]);
                }
                text.push_str(".\n");
                speaker ^= 1;
            }
            text.truncate(bytes);
            text
        })
        .collect()
}

fn micro_dollars(ca: &[Option<i64>]) -> PolarsResult<Column> {
    // Micro-dollars are exact at scale 6; widen to the engine's Decimal(38,10).
    let values: Int128Chunked = ca
        .iter()
        .map(|v| v.map(|v| i128::from(v) * 10_000))
        .collect();
    Ok(values
        .into_decimal(Some(38), 10)?
        .into_series()
        .into_column())
}

impl Platform {
    /// The whole platform as source frames (the columns the engine reads),
    /// restricted to the UTC range of `window`. For the demo and snapshots.
    pub fn frames(
        &self,
        window: &crate::window::Window,
    ) -> crate::error::Result<crate::frames::SourceFrames> {
        use crate::frames::{calls_schema, conform, errors_schema, tenants_schema, SourceFrames};
        let (from, to) = window.utc_range();
        let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
        let mut calls: Vec<Call> = Vec::new();
        let mut errors: Vec<SystemError> = Vec::new();
        for day in self.days() {
            let d = self.day(day);
            calls.extend(
                d.calls
                    .into_iter()
                    .filter(|c| c.created_at_us >= from && c.created_at_us < to),
            );
            errors.extend(
                d.errors
                    .into_iter()
                    .filter(|e| e.created_at_us >= from && e.created_at_us < to),
            );
        }
        let id = |t: usize| self.tenants[t].tenant_id.to_string();
        let tenants = DataFrame::new(vec![
            Column::new(
                "tenant_id".into(),
                self.tenants
                    .iter()
                    .map(|t| t.tenant_id.to_string())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "business_name".into(),
                self.tenants
                    .iter()
                    .map(|t| t.business_name.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "timezone".into(),
                self.tenants.iter().map(|t| t.timezone).collect::<Vec<_>>(),
            ),
            Column::new(
                "status".into(),
                self.tenants.iter().map(|t| t.status).collect::<Vec<_>>(),
            ),
        ])?;
        let cost = |i: usize| -> PolarsResult<Column> {
            micro_dollars(&calls.iter().map(|c| c.costs[i]).collect::<Vec<_>>())
        };
        let names = [
            "stt_cost_usd",
            "llm_cost_usd",
            "tts_cost_usd",
            "total_cost_usd",
        ];
        let mut call_columns = vec![
            Column::new(
                "call_id".into(),
                calls.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "tenant_id".into(),
                calls.iter().map(|c| id(c.tenant)).collect::<Vec<_>>(),
            ),
            Column::new(
                "status".into(),
                calls.iter().map(|c| c.status).collect::<Vec<_>>(),
            ),
            Column::new(
                "outcome".into(),
                calls.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            ),
        ];
        for (i, name) in names.iter().enumerate() {
            call_columns.push(cost(i)?.with_name((*name).into()));
        }
        call_columns.extend([
            Column::new(
                "created_at".into(),
                calls.iter().map(|c| c.created_at_us).collect::<Vec<_>>(),
            ),
            Column::new(
                "duration_seconds".into(),
                calls
                    .iter()
                    .map(|c| c.duration_seconds.map(i64::from))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "errored".into(),
                calls.iter().map(|c| c.errored).collect::<Vec<_>>(),
            ),
        ]);
        let error_frame = DataFrame::new(vec![
            Column::new(
                "tenant_id".into(),
                errors.iter().map(|e| e.tenant.map(id)).collect::<Vec<_>>(),
            ),
            Column::new(
                "call_id".into(),
                errors.iter().map(|e| e.call_id.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "error_type".into(),
                errors.iter().map(|e| e.error_type).collect::<Vec<_>>(),
            ),
            Column::new(
                "severity".into(),
                errors.iter().map(|e| e.severity).collect::<Vec<_>>(),
            ),
            Column::new(
                "resolved".into(),
                errors.iter().map(|e| e.resolved).collect::<Vec<_>>(),
            ),
            Column::new(
                "created_at".into(),
                errors.iter().map(|e| e.created_at_us).collect::<Vec<_>>(),
            ),
        ])?;
        Ok(SourceFrames {
            tenants: conform(tenants, &tenants_schema())?,
            calls: conform(DataFrame::new(call_columns)?, &calls_schema())?,
            errors: conform(error_frame, &errors_schema())?,
        })
    }

    /// Loads the platform into `client`'s database by binary COPY, one day
    /// at a time, in one transaction: the platform tables, the rows, then
    /// the indexes. Returns (calls, errors) loaded.
    pub fn load(
        &self,
        client: &mut postgres::Client,
        replace: bool,
    ) -> crate::error::Result<(u64, u64)> {
        use crate::error::Error;
        use crate::sql;
        use postgres::binary_copy::BinaryCopyInWriter;
        use postgres::types::{ToSql, Type};
        use rust_decimal::Decimal;

        let present: Vec<(String, bool)> = client
            .query(sql::PLATFORM_TABLES_PRESENT, &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let names = |only_foreign: bool| {
            present
                .iter()
                .filter(|(_, generated)| !only_foreign || !generated)
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !present.is_empty() && !replace {
            return Err(Error::usage(format!(
                "the database already holds platform tables ({}); pass --replace to drop and regenerate them",
                names(false)
            )));
        }
        // --replace drops only what generate made: a real platform's
        // tables carry no mark and are never dropped.
        if present.iter().any(|(_, generated)| !generated) {
            return Err(Error::usage(format!(
                "the platform tables {} were not created by callrollup generate, so --replace will not drop them; generate into a new database",
                names(true)
            )));
        }
        let mut tx = client.transaction()?;
        tx.batch_execute(sql::PLATFORM_DROP)?;
        tx.batch_execute(sql::PLATFORM_SCHEMA)?;
        tx.batch_execute(sql::PLATFORM_MARK)?;

        let mut rng = Rng::new(self.spec.seed ^ 0x5EED);
        let tenant_ids: Vec<Uuid> = self.tenants.iter().map(|t| t.tenant_id).collect();
        {
            let sink = tx.copy_in(sql::PLATFORM_COPY_TENANTS)?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[Type::UUID, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT],
            );
            for (i, t) in self.tenants.iter().enumerate() {
                let phone = format!("+1555{:07}", i);
                w.write(&[
                    &t.tenant_id,
                    &t.business_name,
                    &phone,
                    &t.timezone,
                    &t.status,
                ])?;
            }
            w.finish()?;
        }
        let transcripts = conversation_texts(self.spec.transcript_bytes, TEXT_POOL, self.spec.seed);
        let summaries = match self.spec.summary_bytes {
            Some(bytes) => conversation_texts(bytes, TEXT_POOL, !self.spec.seed),
            None => vec!["Caller booked a visit.".to_string()],
        };
        let money = |v: Option<i64>| v.map(|v| Decimal::new(v, 6));
        let mut all_errors: Vec<SystemError> = Vec::new();
        let mut calls_loaded = 0u64;
        {
            let sink = tx.copy_in(sql::PLATFORM_COPY_CALLS)?;
            let types = [
                Type::UUID,
                Type::TEXT,
                Type::UUID,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::NUMERIC,
                Type::NUMERIC,
                Type::NUMERIC,
                Type::NUMERIC,
                Type::INT4,
                Type::TIMESTAMPTZ,
                Type::TIMESTAMPTZ,
            ];
            let mut w = BinaryCopyInWriter::new(sink, &types);
            let mut write = |c: &Call, text: usize| -> crate::error::Result<()> {
                let created =
                    chrono::DateTime::from_timestamp_micros(c.created_at_us).expect("in range");
                let [stt, llm, tts, total] = c.costs.map(money);
                let row: [&(dyn ToSql + Sync); 14] = [
                    &rng.uuid(),
                    &c.call_id,
                    &tenant_ids[c.tenant],
                    &c.status,
                    &transcripts[text % transcripts.len()],
                    &summaries[text % summaries.len()],
                    &c.outcome,
                    &stt,
                    &llm,
                    &tts,
                    &total,
                    &c.duration_seconds,
                    &created,
                    &created,
                ];
                w.write(&row)?;
                Ok(())
            };
            // Rows go in as a platform appends them, in created_at order:
            // a day's calls (every zone's, about 50 hours of UTC) merge
            // with what the days before left that is still later.
            let mut pending: std::collections::VecDeque<Call> = Default::default();
            for day in self.days() {
                let d = self.day(day);
                let mut calls = d.calls;
                calls.sort_by_key(|c| c.created_at_us);
                let start = calls.first().map_or(i64::MAX, |c| c.created_at_us);
                while pending.front().is_some_and(|c| c.created_at_us < start) {
                    let c = pending.pop_front().expect("a pending call");
                    write(&c, calls_loaded as usize)?;
                    calls_loaded += 1;
                }
                let mut merged =
                    std::collections::VecDeque::with_capacity(pending.len() + calls.len());
                let mut calls = calls.into_iter().peekable();
                while let Some(first) = pending.front() {
                    match calls.peek() {
                        Some(c) if c.created_at_us < first.created_at_us => {
                            merged.push_back(calls.next().expect("a call"))
                        }
                        _ => merged.push_back(pending.pop_front().expect("a pending call")),
                    }
                }
                merged.extend(calls);
                pending = merged;
                all_errors.extend(d.errors);
            }
            for c in pending {
                write(&c, calls_loaded as usize)?;
                calls_loaded += 1;
            }
            w.finish()?;
        }
        // In created_at order too, as logged.
        all_errors.sort_by_key(|e| e.created_at_us);
        {
            let sink = tx.copy_in(sql::PLATFORM_COPY_ERRORS)?;
            let types = [
                Type::UUID,
                Type::UUID,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::BOOL,
                Type::TIMESTAMPTZ,
            ];
            let mut w = BinaryCopyInWriter::new(sink, &types);
            let message = "upstream said no (generated)";
            for e in &all_errors {
                let created =
                    chrono::DateTime::from_timestamp_micros(e.created_at_us).expect("in range");
                let tenant = e.tenant.map(|t| tenant_ids[t]);
                w.write(&[
                    &rng.uuid(),
                    &tenant,
                    &e.call_id,
                    &e.error_type,
                    &message,
                    &e.severity,
                    &e.resolved,
                    &created,
                ])?;
            }
            w.finish()?;
        }
        tx.batch_execute(sql::PLATFORM_INDEXES)?;
        // Statistics as autovacuum would gather soon after such a load:
        // the planner's row estimates and the engine's read order
        // (queries/source_created_at_correlation.sql) come from them.
        tx.batch_execute(sql::PLATFORM_ANALYZE)?;
        tx.commit()?;
        Ok((calls_loaded, all_errors.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            tenants: 20,
            calls: 2_000,
            days: 5,
            end: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
            seed: 7,
            transcript_bytes: 10,
            summary_bytes: None,
            shape: Shape::default(),
            quiet_weekends: false,
            injections: Vec::new(),
        }
    }

    #[test]
    fn injections_change_their_tenant_days_and_nothing_else() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        let plain = Platform::new(spec());
        let injected = Platform::new(Spec {
            injections: vec![
                Injection {
                    tenant: Some(0),
                    first_day: day,
                    days: 1,
                    change: Change::UnitCost {
                        component: 1,
                        permille: 3000,
                    },
                },
                Injection {
                    tenant: Some(1),
                    first_day: day,
                    days: 1,
                    change: Change::Volume { permille: 2000 },
                },
            ],
            ..spec()
        });
        let other = day - Days::new(1);
        assert_eq!(
            format!("{:?}", plain.day(other).calls),
            format!("{:?}", injected.day(other).calls)
        );
        let (before, after) = (plain.day(day).calls, injected.day(day).calls);
        let of = |calls: &[Call], t: usize| -> Vec<Call> {
            calls.iter().filter(|c| c.tenant == t).cloned().collect()
        };
        assert_eq!(of(&after, 1).len(), 2 * of(&before, 1).len());
        for (b, a) in of(&before, 0).iter().zip(of(&after, 0)) {
            assert_eq!(a.costs[1], b.costs[1].map(|c| c * 3));
            assert_eq!(
                a.costs[3],
                b.costs[3].map(|t| t + b.costs[1].map_or(0, |c| 2 * c))
            );
            assert_eq!((a.costs[0], a.costs[2]), (b.costs[0], b.costs[2]));
        }
        assert_eq!(of(&before, 2).len(), of(&after, 2).len());
    }

    #[test]
    fn quiet_weekends_keep_a_weeks_calls() {
        let p = Platform::new(Spec {
            quiet_weekends: true,
            days: 7,
            calls: 7_000,
            ..spec()
        });
        let counts: Vec<usize> = p.days().map(|d| p.day(d).calls.len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7_000);
        assert_eq!(counts.iter().filter(|c| **c == 500).count(), 2);
    }

    #[test]
    fn same_seed_same_data() {
        let a = Platform::new(spec());
        let b = Platform::new(spec());
        let day = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let (da, db) = (a.day(day), b.day(day));
        assert_eq!(format!("{:?}", da.calls), format!("{:?}", db.calls));
        assert_eq!(format!("{:?}", da.errors), format!("{:?}", db.errors));
        let c = Platform::new(Spec { seed: 8, ..spec() });
        assert_ne!(format!("{:?}", c.day(day).calls), format!("{:?}", da.calls));
    }

    #[test]
    fn calls_add_up_and_fall_on_their_local_day() {
        let p = Platform::new(spec());
        let days: Vec<Day> = p.days().map(|d| p.day(d)).collect();
        assert_eq!(days.iter().map(|d| d.calls.len()).sum::<usize>(), 2_000);
        for (date, day) in p.days().zip(&days) {
            for call in &day.calls {
                let zone: Tz = p.tenants[call.tenant]
                    .timezone
                    .unwrap_or("UTC")
                    .parse()
                    .unwrap();
                let local = zone
                    .timestamp_micros(call.created_at_us)
                    .unwrap()
                    .date_naive();
                assert_eq!(local, date, "{call:?}");
            }
        }
    }
}
