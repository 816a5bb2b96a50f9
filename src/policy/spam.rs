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
        Value::Number(n) => Some(number_key(n)),
        _ => None,
    }
}

/// A number as one text per value: `42`, `42.0`, `4.2e1` and `"42"` are one target, and
/// `-0.0` is `0`.
fn number_key(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        // Integral values an f64 holds exactly print as integers.
        Some(f) if f.fract() == 0.0 && f.abs() < 9.007e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

/// Folds a target, erring towards counting two spellings as one (a stricter guard):
/// Unicode NFKC (fullwidth and other compatibility forms become plain letters); characters
/// that render as nothing dropped (controls, zero-width and bidirectional marks, variation
/// selectors, tags, fillers: Unicode's default-ignorable set); lower case with the few full
/// case folds lower case lacks (`ß` → `ss`, final `ς` → `σ`, dotted and dotless `i` → `i`);
/// runs of whitespace as one space, none at either end; leading `@`s removed. A looping
/// agent that varies `@Fan`, ` fan`, `ＦＡＮ` or `fan\u{200b}` still addresses one recipient.
/// `None` when nothing is left.
pub fn target_key(raw: &str) -> Option<String> {
    let visible: String = raw.nfkc().filter(|c| !is_invisible(*c)).collect();
    let mut folded = String::with_capacity(visible.len());
    for c in visible.chars() {
        match c {
            'ß' | 'ẞ' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            'ı' | 'İ' => folded.push('i'),
            // The dot `İ` leaves when lower-cased by other means.
            '\u{307}' if folded.ends_with('i') => {}
            c => folded.extend(c.to_lowercase()),
        }
    }
    let spaced = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    let t = spaced.trim_start_matches('@').trim_start();
    (!t.is_empty()).then(|| t.to_string())
}

/// Characters that render as nothing, so two targets differing only by them look the same:
/// controls and Unicode's Default_Ignorable_Code_Point set (DerivedCoreProperties.txt), plus
/// the blank braille pattern.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fff8}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
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
            "\u{2068}fan\u{2069}",
            "fan\u{fe0f}",
            "f\u{34f}an",
            "fa\u{61c}n\u{180e}",
            "fan\u{e0061}",
            "fan\u{2800}",
            "@@fan",
            "fan\u{7}",
        ] {
            assert_eq!(target_key(raw).as_deref(), Some("fan"), "{raw:?}");
        }
        assert_eq!(target_key("Straße"), target_key("STRASSE"));
        assert_eq!(target_key("ΣΟΦΟΣ"), target_key("σοφος"));
        assert_eq!(target_key("İZMİR"), target_key("izmir"));
        assert_eq!(target_key("ızmır"), target_key("izmir"));
        assert_eq!(target_key("Jane  \u{3000}Doe").as_deref(), Some("jane doe"));
        assert_eq!(target_key("fan2").as_deref(), Some("fan2"));
        assert_ne!(target_key("fan"), target_key("fan2"));
        for n in [json!(42), json!(42.0), json!(4.2e1), json!("42")] {
            assert_eq!(target_of(Some(&n)).as_deref(), Some("42"), "{n}");
        }
        assert_eq!(target_of(Some(&json!(-0.0))).as_deref(), Some("0"));
        assert_eq!(target_of(Some(&json!(0.5))).as_deref(), Some("0.5"));
        assert_eq!(target_of(Some(&json!("c-9"))).as_deref(), Some("c-9"));
        for v in [
            json!(null),
            json!(""),
            json!(" @ "),
            json!("@@"),
            json!("\u{2066}\u{2069}"),
            json!("\u{3164}"),
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
