//! Progress lines on stderr: plain text for people, one JSON object per
//! line (`--log-format json`) for log collectors. Never carries secrets:
//! callers pass masked URLs and no row data.

use std::sync::OnceLock;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Chooses the format once, at start-up.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
}

fn line(level: &str, message: &str, exit_code: Option<i32>) -> String {
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Text if level == "error" => format!("callrollup: error: {message}"),
        LogFormat::Text => format!("callrollup: {message}"),
        LogFormat::Json => {
            let mut v = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": level,
                "msg": message,
            });
            if let Some(code) = exit_code {
                v["exit_code"] = code.into();
            }
            v.to_string()
        }
    }
}

pub fn info(message: &str) {
    eprintln!("{}", line("info", message, None));
}

/// The one error line a failed command ends with.
pub fn error(message: &str, exit_code: i32) {
    eprintln!("{}", line("error", message, Some(exit_code)));
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_lines_are_prefixed() {
        assert_eq!(
            super::line("info", "extract…", None),
            "callrollup: extract…"
        );
        assert_eq!(super::line("error", "no", Some(2)), "callrollup: error: no");
    }
}
