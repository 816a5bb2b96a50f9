//! Feature flags of new side-effect capabilities (§8.1): initial state from the config,
//! changes from operators (journaled and audited).

use std::collections::HashMap;
use std::sync::RwLock;

use crate::config::{Config, Stage};
use crate::journal::{JournalError, Store};

/// Current flag states by capability name.
#[derive(Debug, Default)]
pub struct Flags {
    on: RwLock<HashMap<String, bool>>,
}

impl Flags {
    /// Config values, overridden by the last operator change stored in the journal.
    pub fn load(cfg: &Config, journal: &dyn Store) -> Result<Self, JournalError> {
        let mut on: HashMap<String, bool> = cfg
            .capabilities
            .iter()
            .filter(|(_, c)| c.stage == Stage::New)
            .map(|(k, c)| (k.clone(), c.enabled))
            .collect();
        for (cap, enabled) in journal.flags()? {
            if let Some(v) = on.get_mut(&cap) {
                *v = enabled;
            }
        }
        Ok(Self {
            on: RwLock::new(on),
        })
    }

    /// Whether the capability's flag is on (unknown capabilities: off).
    pub fn enabled(&self, capability: &str) -> bool {
        self.on
            .read()
            .expect("flags lock")
            .get(capability)
            .copied()
            .unwrap_or(false)
    }

    pub fn set(&self, capability: &str, enabled: bool) {
        self.on
            .write()
            .expect("flags lock")
            .insert(capability.to_string(), enabled);
    }

    /// Every flag and its state, sorted.
    pub fn all(&self) -> Vec<(String, bool)> {
        let mut v: Vec<_> = self
            .on
            .read()
            .expect("flags lock")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort();
        v
    }
}
