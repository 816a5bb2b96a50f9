//! The spam-loop gate: repeated side effects on one (account, action, target) in a sliding window.

use std::collections::VecDeque;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::call::{Denial, Reason};
use crate::clock::Millis;

/// The guard's key for a target argument: a non-empty string or a number, folded so that
/// spellings a platform treats as one recipient count as one (see [`target_key`]). `None` for
/// anything else (missing, null, empty, a boolean, an array, an object): a watched tool with
/// such a target is refused, since the guard could not count it.
pub fn target_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => target_key(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Folds a target: Unicode NFKC (fullwidth and other compatibility forms become their plain
/// letters), invisible format characters (zero-width spaces and joiners, soft hyphens, BOM)
/// dropped, surrounding whitespace and one leading `@` trimmed, lower case. A looping agent
/// that varies `@Fan`, ` fan`, `ｆａｎ` or `fan\u{200b}` still addresses one recipient. `None`
/// when nothing is left.
pub fn target_key(raw: &str) -> Option<String> {
    let folded: String = raw
        .nfkc()
        .filter(|c| !is_invisible(*c))
        .collect::<String>()
        .to_lowercase();
    let t = folded.trim();
    let t = t.strip_prefix('@').unwrap_or(t).trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Characters that render as nothing, so two targets differing only by them look the same.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// Limits of the spam-loop guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_repeats: u32,
    pub within_ms: Millis,
}

/// Drops dispatches that left the window, then refuses if one more would exceed the limit.
pub fn check(window: &mut VecDeque<Millis>, now: Millis, limits: &Limits) -> Result<(), Denial> {
    while window.front().is_some_and(|&t| t <= now - limits.within_ms) {
        window.pop_front();
    }
    if window.len() as u32 >= limits.max_repeats {
        return Err(Denial::new(
            Reason::SpamLoop,
            format!(
                "{} identical side effects on this account and target within {} s; refusing the next one (spam loop)",
                window.len(),
                limits.within_ms / 1000
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spellings_of_one_recipient_share_a_key_and_uncountable_targets_have_none() {
        for raw in [
            "@Fan",
            "fan",
            " fan ",
            "FAN",
            "ｆａｎ",
            "fan\u{200b}",
            "@\u{feff}fan",
            "\tＦan\n",
        ] {
            assert_eq!(target_key(raw).as_deref(), Some("fan"), "{raw:?}");
        }
        assert_eq!(target_key("fan2").as_deref(), Some("fan2"));
        assert_ne!(target_key("fan"), target_key("fan2"));
        assert_eq!(target_of(Some(&json!(12345))).as_deref(), Some("12345"));
        assert_eq!(target_of(Some(&json!("c-9"))).as_deref(), Some("c-9"));
        for v in [
            json!(null),
            json!(""),
            json!(" @ "),
            json!(true),
            json!(["w"]),
            json!({"id": "w"}),
        ] {
            assert_eq!(target_of(Some(&v)), None, "{v}");
        }
        assert_eq!(target_of(None), None);
    }

    #[test]
    fn fourth_repeat_within_the_window_is_refused() {
        let limits = Limits {
            max_repeats: 3,
            within_ms: 3_600_000,
        };
        let mut w = VecDeque::new();
        for t in [0, 10, 20] {
            check(&mut w, t, &limits).unwrap();
            w.push_back(t);
        }
        assert_eq!(
            check(&mut w, 30, &limits).unwrap_err().reason,
            Reason::SpamLoop
        );
        // An hour after the first, one slot is free again.
        assert!(check(&mut w, 3_600_000, &limits).is_ok());
        assert_eq!(w.len(), 2);
    }
}
