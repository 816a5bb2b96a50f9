//! The freeze gate (§7, §8): new side-effect capabilities stop when reliability burns.

use crate::budget::Band;
use crate::call::{Denial, Reason};
use crate::config::Stage;

/// What the gate decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze<'a> {
    /// The tool's capability and its stage, if it has one.
    pub capability: Option<(&'a str, Stage)>,
    /// The capability's feature flag.
    pub flag_enabled: bool,
    pub band: Band,
    /// An active hard stop, by id.
    pub hard_stop: Option<&'a str>,
    pub canary_tenant: bool,
}

/// Established capabilities (and tools without one) always pass. A new capability needs its
/// flag, no active hard stop, no RED band, and in YELLOW a canary tenant.
pub fn check(f: &Freeze) -> Result<(), Denial> {
    let Some((name, Stage::New)) = f.capability else {
        return Ok(());
    };
    if let Some(id) = f.hard_stop {
        return Err(Denial::new(
            Reason::HardStop,
            format!(
                "hard stop {id} is active: new capability {name:?} is frozen until an operator clears it"
            ),
        ));
    }
    match f.band {
        Band::Red => {
            return Err(Denial::new(
                Reason::Frozen,
                format!(
                    "reliability is RED: new capability {name:?} is frozen (release freeze, §7.1)"
                ),
            ));
        }
        Band::Yellow if !f.canary_tenant => {
            return Err(Denial::new(
                Reason::CanaryOnly,
                format!(
                    "reliability is YELLOW: new capability {name:?} runs for canary tenants only"
                ),
            ));
        }
        _ => {}
    }
    if !f.flag_enabled {
        return Err(Denial::new(
            Reason::FlagDisabled,
            format!("the feature flag of new capability {name:?} is off"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(
        stage: Stage,
        band: Band,
        flag: bool,
        stop: Option<&'static str>,
        canary: bool,
    ) -> Result<(), Reason> {
        check(&Freeze {
            capability: Some(("dm_send", stage)),
            flag_enabled: flag,
            band,
            hard_stop: stop,
            canary_tenant: canary,
        })
        .map_err(|d| d.reason)
    }

    #[test]
    fn decision_table() {
        assert_eq!(
            f(Stage::Established, Band::Red, false, Some("hs"), false),
            Ok(())
        );
        assert_eq!(f(Stage::New, Band::Green, true, None, false), Ok(()));
        assert_eq!(
            f(Stage::New, Band::Green, false, None, false),
            Err(Reason::FlagDisabled)
        );
        assert_eq!(
            f(Stage::New, Band::Yellow, true, None, false),
            Err(Reason::CanaryOnly)
        );
        assert_eq!(f(Stage::New, Band::Yellow, true, None, true), Ok(()));
        assert_eq!(
            f(Stage::New, Band::Red, true, None, true),
            Err(Reason::Frozen)
        );
        assert_eq!(
            f(Stage::New, Band::Green, true, Some("hs"), true),
            Err(Reason::HardStop)
        );
        assert!(
            check(&Freeze {
                capability: None,
                flag_enabled: false,
                band: Band::Red,
                hard_stop: Some("x"),
                canary_tenant: false
            })
            .is_ok()
        );
    }
}
