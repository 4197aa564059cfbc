//! Every line the engine writes on stderr, formatted in this one place:
//! plain text for people, one JSON object per line (`--log-format json`)
//! for log collectors; `-q` keeps only errors, `-v` adds each stage's start
//! and end. Lines written while a run is under way carry its `run_id`. On
//! a terminal, a progress bar shows the days done of a long window (never
//! with `-q`, `--log-format json`, or when stderr is not a terminal).
//! Never carries secrets: callers pass masked URLs and no row data.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How much goes to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    #[default]
    Normal,
    /// Also each stage's start and end.
    Verbose,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Debug,
    Info,
    Error,
}

static SETTINGS: OnceLock<(LogFormat, Verbosity)> = OnceLock::new();
/// The run under way, if any.
static RUN_ID: Mutex<Option<String>> = Mutex::new(None);
/// The progress bar being drawn, if any: lines are printed above it.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Chooses the format and verbosity once, at start-up.
pub fn init(format: LogFormat, verbosity: Verbosity) {
    let _ = SETTINGS.set((format, verbosity));
}

fn settings() -> (LogFormat, Verbosity) {
    SETTINGS.get().copied().unwrap_or_default()
}

/// Lines from here on carry this run's id (None: no run any more).
pub fn set_run(run_id: Option<&uuid::Uuid>) {
    *RUN_ID.lock().unwrap_or_else(|e| e.into_inner()) = run_id.map(|id| id.to_string());
}

fn line(level: Level, message: &str, exit_code: Option<i32>, run_id: Option<&str>) -> String {
    match settings().0 {
        LogFormat::Text => {
            let run = run_id.map(|id| format!(" (run {id})")).unwrap_or_default();
            match level {
                Level::Error => format!("callrollup: error: {message}{run}"),
                _ => format!("callrollup: {message}{run}"),
            }
        }
        LogFormat::Json => {
            let mut v = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": match level {
                    Level::Debug => "debug",
                    Level::Info => "info",
                    Level::Error => "error",
                },
                "msg": message,
            });
            if let Some(id) = run_id {
                v["run_id"] = id.into();
            }
            if let Some(code) = exit_code {
                v["exit_code"] = code.into();
            }
            v.to_string()
        }
    }
}

fn emit(level: Level, message: &str, exit_code: Option<i32>) {
    let verbosity = settings().1;
    let shown = match level {
        Level::Error => true,
        Level::Info => verbosity >= Verbosity::Normal,
        Level::Debug => verbosity >= Verbosity::Verbose,
    };
    if !shown {
        return;
    }
    let run_id = RUN_ID.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let text = line(level, message, exit_code, run_id.as_deref());
    match BAR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(bar) => bar.suspend(|| eprintln!("{text}")),
        None => eprintln!("{text}"),
    }
}

pub fn info(message: &str) {
    emit(Level::Info, message, None);
}

/// Shown with `-v`: stages starting and ending.
pub fn debug(message: &str) {
    emit(Level::Debug, message, None);
}

/// The one error line a failed command ends with.
pub fn error(message: &str, exit_code: i32) {
    emit(Level::Error, message, Some(exit_code));
}

/// A progress bar over `total` days, when stderr is a terminal, the
/// format is text and not `-q`; it is cleared when dropped.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn start(total_days: u64) -> Progress {
        use std::io::IsTerminal;
        let (format, verbosity) = settings();
        if format != LogFormat::Text
            || verbosity == Verbosity::Quiet
            || !std::io::stderr().is_terminal()
        {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(total_days);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} days  {msg}  {elapsed} elapsed, ETA {eta}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Progress(Some(bar))
    }

    /// Whether a bar is drawn (then per-chunk lines are left to `-v`).
    pub fn is_drawn(&self) -> bool {
        self.0.is_some()
    }

    /// `days` more done; `rows` read so far in `elapsed`.
    pub fn advance(&self, days: u64, rows: u64, elapsed: Duration) {
        if let Some(bar) = &self.0 {
            bar.inc(days);
            let rate = rows as f64 / elapsed.as_secs_f64().max(1e-3);
            bar.set_message(format!("{rows} rows read, {rate:.0} rows/s"));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
            *BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_are_prefixed_and_carry_the_run() {
        assert_eq!(
            line(Level::Info, "extract…", None, None),
            "callrollup: extract…"
        );
        assert_eq!(
            line(Level::Error, "no", Some(2), None),
            "callrollup: error: no"
        );
        assert_eq!(
            line(Level::Info, "chunk", None, Some("4535ea50")),
            "callrollup: chunk (run 4535ea50)"
        );
    }
}
