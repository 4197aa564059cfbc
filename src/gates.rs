//! Quality gates: `run --fail-on KIND[>N]` makes a run whose findings of
//! KIND exceed N rows (0 when no N is given) exit 3 — after its data is
//! written and its findings recorded, so the gate reports a problem
//! without holding back the billing data.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The finding kinds of `data_quality_findings` (docs/CONTRACT.md §3).
pub const KINDS: [&str; 5] = [
    "invalid_timezone",
    "unknown_tenant",
    "negative_cost",
    "missing_cost",
    "cost_mismatch",
];

/// `--fail-on drift`: tenant days of the closed days before the window
/// whose source figures differ from the summary's (`crate::drift`).
pub const DRIFT: &str = "drift";

/// `--fail-on cost_anomaly`: the cost anomalies (rises) in the days the
/// run wrote (`crate::anomalies`).
pub const COST_ANOMALY: &str = "cost_anomaly";

/// A check made after a run (the drift check, the cost anomalies): what
/// it found, or why it was not made.
#[derive(Debug, Clone)]
pub enum Check<T> {
    Made(T),
    /// Not made for this kind of run: why.
    NotMade(&'static str),
    /// Made, and failed: why.
    Failed(String),
}

impl<T> Check<T> {
    pub fn made(&self) -> Option<&T> {
        match self {
            Check::Made(found) => Some(found),
            _ => None,
        }
    }
}

/// One `--fail-on`: the kind and the most rows it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub kind: String,
    pub max_rows: i64,
}

impl Gate {
    /// `missing_cost` or `missing_cost>100`.
    pub fn parse(text: &str) -> Result<Gate> {
        let (kind, max) = match text.split_once('>') {
            Some((kind, max)) => (kind.trim(), Some(max.trim())),
            None => (text.trim(), None),
        };
        if !KINDS.contains(&kind) && kind != DRIFT && kind != COST_ANOMALY {
            return Err(Error::usage(format!(
                "--fail-on {text:?}: unknown finding kind {kind:?}; use one of {}, {DRIFT} or {COST_ANOMALY}, optionally with >N (e.g. missing_cost>100)",
                KINDS.join(", ")
            )));
        }
        let max_rows = match max {
            None => 0,
            Some(n) => n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Error::usage(format!(
                    "--fail-on {text:?}: {n:?} is not a row count; use e.g. {kind}>100"
                ))
            })?,
        };
        Ok(Gate {
            kind: kind.to_string(),
            max_rows,
        })
    }

    /// The rows of this gate's kind, and whether they trip it.
    pub fn evaluate(&self, findings: &BTreeMap<String, i64>) -> (i64, bool) {
        let rows = findings.get(&self.kind).copied().unwrap_or(0);
        (rows, rows > self.max_rows)
    }
}

/// Each gate as a line for the summary, and the error for those tripped.
pub fn check(gates: &[Gate], findings: &BTreeMap<String, i64>) -> (Vec<String>, Option<Error>) {
    let mut lines = Vec::new();
    let mut tripped = Vec::new();
    for gate in gates {
        // The drift check and the cost anomalies are not made for every
        // run: a gate on them then says so, never "0 rows ok".
        if [DRIFT, COST_ANOMALY].contains(&gate.kind.as_str()) && !findings.contains_key(&gate.kind)
        {
            lines.push(format!("{} not checked", gate.kind));
            continue;
        }
        let (rows, trips) = gate.evaluate(findings);
        let unit = match gate.kind.as_str() {
            DRIFT => "tenant days",
            COST_ANOMALY => "lines",
            _ => "rows",
        };
        let line = format!(
            "{} {rows} {unit} {} {} {}",
            gate.kind,
            if trips { ">" } else { "<=" },
            gate.max_rows,
            if trips { "TRIPPED" } else { "ok" }
        );
        if trips {
            tripped.push(format!(
                "{} has {rows} {unit} (> {})",
                gate.kind, gate.max_rows
            ));
        }
        lines.push(line);
    }
    let error = (!tripped.is_empty()).then(|| {
        let findings_tripped = tripped
            .iter()
            .any(|t| !t.starts_with(DRIFT) && !t.starts_with(COST_ANOMALY));
        let drift_tripped = tripped.iter().any(|t| t.starts_with(DRIFT));
        let anomalies_tripped = tripped.iter().any(|t| t.starts_with(COST_ANOMALY));
        let mut then = vec!["the data and the findings are written"];
        if findings_tripped {
            then.push("see data_quality_findings for the tenant days");
        }
        if drift_tripped {
            then.push(
                "the summary's drift line names the tenant days and the command that re-rolls them",
            );
        }
        if anomalies_tripped {
            then.push(
                "the summary's anomalies lines name them and the command that lists them all",
            );
        }
        Error::Check(format!(
            "quality gate tripped: {}; {}",
            tripped.join(", "),
            then.join("; ")
        ))
    });
    (lines, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_parse_and_trip_above_their_limit() {
        assert_eq!(
            Gate::parse("missing_cost>100").unwrap(),
            Gate {
                kind: "missing_cost".into(),
                max_rows: 100
            }
        );
        assert_eq!(Gate::parse("negative_cost").unwrap().max_rows, 0);
        assert!(Gate::parse("orphan").is_err());
        assert!(Gate::parse("missing_cost>lots").is_err());
        assert!(Gate::parse("missing_cost>-1").is_err());
        let findings = BTreeMap::from([("missing_cost".to_string(), 117)]);
        let gates = [
            Gate::parse("missing_cost>100").unwrap(),
            Gate::parse("missing_cost>117").unwrap(),
            Gate::parse("negative_cost").unwrap(),
        ];
        let (lines, error) = check(&gates, &findings);
        assert_eq!(
            lines,
            [
                "missing_cost 117 rows > 100 TRIPPED",
                "missing_cost 117 rows <= 117 ok",
                "negative_cost 0 rows <= 0 ok"
            ]
        );
        let message = error.unwrap().to_string();
        assert!(
            message.contains("missing_cost has 117 rows (> 100)"),
            "{message}"
        );
        assert!(check(&gates[1..], &findings).1.is_none());
    }
}
