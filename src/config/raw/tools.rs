//! Validation of `tools:` entries: their classification, and the upstream each one belongs to.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::{Action, Checker, Lane, RawCapability, RawTool, is_pointer};
use crate::config::{ConfigError, ProofPointers, ToolPolicy, Upstream};

/// Validates every entry and records, on each upstream, the entries it alone owns (by its
/// own tool name) so that the supervisor can warn once it knows the upstream's real tools.
pub(super) fn validate_tools(
    c: &Checker,
    raw: BTreeMap<String, Spanned<RawTool>>,
    capabilities: &BTreeMap<String, RawCapability>,
    upstreams: &mut [Upstream],
) -> Result<BTreeMap<String, ToolPolicy>, ConfigError> {
    let mut tools = BTreeMap::new();
    for (name, t) in raw {
        let at = t.referenced;
        let t = t.value;
        let field = format!("tools.{name}");
        // A key no upstream can expose is a typo whose real tool would run unclassified
        // (fail-closed, but without its action, platform or proof): refuse it here rather
        // than let it sit silently.
        let owners = owners(upstreams, &name);
        if owners.is_empty() {
            let prefixes: Vec<String> = upstreams
                .iter()
                .map(|u| format!("{:?} ({})", u.prefix, u.name))
                .collect();
            let known = if prefixes.is_empty() {
                "no upstream is configured".to_string()
            } else {
                format!("the upstreams' prefixes are {}", prefixes.join(", "))
            };
            return c.err(
                at,
                &field,
                format!(
                    "{name:?} matches no upstream: exposed names are <prefix><tool>, and {known}"
                ),
            );
        }
        if let [only] = owners[..] {
            let own = name[upstreams[only].prefix.len()..].to_string();
            upstreams[only].classified.push(own);
        }
        for (k, p) in [
            ("post_id", &t.proof.post_id),
            ("url", &t.proof.url),
            ("screenshot", &t.proof.screenshot),
        ] {
            if let Some(p) = p
                && !is_pointer(p)
            {
                return c.err(
                    at,
                    format!("{field}.proof.{k}"),
                    format!("{p:?} is not a JSON pointer (it must start with '/')"),
                );
            }
        }
        if let Some(cap) = &t.capability
            && !capabilities.is_empty()
            && !capabilities.contains_key(cap)
        {
            return c.err(
                at,
                format!("{field}.capability"),
                format!("capability {cap:?} is not declared under capabilities:"),
            );
        }
        let account_arg = t.account_arg.unwrap_or_else(|| "account_id".into());
        if account_arg.is_empty() {
            return c.err(at, format!("{field}.account_arg"), "must not be empty");
        }
        tools.insert(
            name,
            ToolPolicy {
                side_effect: t.side_effect.unwrap_or(true),
                action: t.action.unwrap_or(Action::Other),
                lane: t.lane.unwrap_or(Lane::Api),
                platform: t.platform,
                capability: t.capability,
                account_arg,
                target_arg: t.target_arg,
                proof: ProofPointers {
                    post_id: t.proof.post_id,
                    url: t.proof.url,
                    screenshot: t.proof.screenshot,
                },
            },
        );
    }
    Ok(tools)
}

/// The upstreams that could expose `name`: those with the longest prefix it starts with
/// (and leaves a tool name after; an empty prefix can own any name). Several when they share
/// that prefix.
fn owners(upstreams: &[Upstream], name: &str) -> Vec<usize> {
    let fits = |u: &Upstream| {
        u.prefix.is_empty() || (name.len() > u.prefix.len() && name.starts_with(&u.prefix))
    };
    let Some(longest) = upstreams
        .iter()
        .filter(|u| fits(u))
        .map(|u| u.prefix.len())
        .max()
    else {
        return Vec::new();
    };
    (0..upstreams.len())
        .filter(|&i| fits(&upstreams[i]) && upstreams[i].prefix.len() == longest)
        .collect()
}
