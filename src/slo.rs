//! SLO definitions (`slo_definitions.yml`): parsed and checked with file:line:column errors.
//!
//! This is the structural layer `toolgate check` validates today: ids, targets and windows.
//! The SLI selector (`sli:`) is kept as data for the budget engine to interpret.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{ConfigError, parse_duration};

/// The SLO file embedded in the binary, used when the configured path does not exist and the
/// gateway runs on its embedded default.
pub const EMBEDDED: &str = include_str!("../slo_definitions.yml");

/// One service level objective.
#[derive(Debug, Clone)]
pub struct Slo {
    pub id: String,
    pub name: String,
    /// Fraction of good events required, in (0, 1].
    pub target: f64,
    pub window: Duration,
    /// The SLI selector, as written.
    pub sli: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Spanned<u32>,
    slos: Vec<Spanned<RawSlo>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    id: String,
    name: String,
    target: f64,
    window: String,
    sli: BTreeMap<String, serde_json::Value>,
}

/// Loads and validates an SLO file.
pub fn load(path: &Path) -> Result<Vec<Slo>, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        field: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &file)
}

/// Parses and validates SLO definitions from text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Slo>, ConfigError> {
    let err = |line, column, field: String, message: String| ConfigError {
        file: file.into(),
        line,
        column,
        field,
        message,
    };
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
        let (l, c) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        err(
            l,
            c,
            "(yaml)".into(),
            e.to_string().lines().next().unwrap_or_default().into(),
        )
    })?;
    if raw.version.value != 1 {
        let at = raw.version.referenced;
        return Err(err(
            at.line(),
            at.column(),
            "version".into(),
            "only version 1 is supported".into(),
        ));
    }
    let mut ids = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in raw.slos.into_iter().enumerate() {
        let (line, column) = (s.referenced.line(), s.referenced.column());
        let s = s.value;
        let field = |f: &str| format!("slos[{i}].{f}");
        if s.id.is_empty() || !ids.insert(s.id.clone()) {
            return Err(err(
                line,
                column,
                field("id"),
                format!("{:?} is empty or declared twice", s.id),
            ));
        }
        if !(s.target > 0.0 && s.target <= 1.0) {
            return Err(err(
                line,
                column,
                field("target"),
                format!("{} must be a fraction in (0, 1], e.g. 0.995", s.target),
            ));
        }
        let window =
            parse_duration(&s.window).map_err(|m| err(line, column, field("window"), m))?;
        if !s.sli.contains_key("source") {
            return Err(err(
                line,
                column,
                field("sli.source"),
                "missing: say where the SLI's events come from".into(),
            ));
        }
        out.push(Slo {
            id: s.id,
            name: s.name,
            target: s.target,
            window,
            sli: s.sli,
        });
    }
    if out.is_empty() {
        return Err(err(0, 0, "slos".into(), "no SLOs defined".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_has_the_policy_slos() {
        let slos = parse(EMBEDDED, "slo_definitions.yml").unwrap();
        let ids: Vec<_> = slos.iter().map(|s| s.id.as_str()).collect();
        for id in [
            "SLO-01", "SLO-02", "SLO-03", "SLO-04", "SLO-05A", "SLO-05B", "SLO-06A", "SLO-06B",
            "SLO-07", "SLO-08",
        ] {
            assert!(ids.contains(&id), "{id} missing");
        }
        assert!(
            slos.iter()
                .all(|s| s.window == Duration::from_secs(28 * 86400))
        );
    }

    #[test]
    fn errors_are_located() {
        let e = parse("version: 1\nslos:\n  - id: A\n    name: a\n    target: 99.5\n    window: 28d\n    sli: {source: x}\n", "s.yml").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "slos[0].target"), "{e}");
        let e = parse("version: 1\nslos:\n  - id: A\n    nmae: a\n", "s.yml").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
    }
}
