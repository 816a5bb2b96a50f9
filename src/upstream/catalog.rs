//! The merged tool catalog: every connected upstream's tools under their exposed names.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rmcp::model::Tool;

use super::Link;

/// Where an exposed tool lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Index of the upstream in config order.
    pub upstream: usize,
    /// The tool's own name on its upstream.
    pub original: Arc<str>,
    /// The upstream's `readOnlyHint` annotation (used when the config does not classify it).
    pub read_only_hint: bool,
}

/// A name two upstreams would both expose; withheld rather than silently shadowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub name: String,
    pub upstreams: Vec<String>,
}

/// Immutable snapshot of all exposed tools; replaced whole when any upstream changes.
#[derive(Debug, Default)]
pub struct Catalog {
    /// `tools/list` as the runner sees it.
    pub tools: Arc<Vec<Tool>>,
    entries: HashMap<String, CatalogEntry>,
    pub conflicts: Vec<Conflict>,
}

impl Catalog {
    /// Merges per-upstream tool lists (`(prefix, tools)` in config order) into one catalog.
    pub fn build(links: &[Arc<Link>], per_upstream: &[(&str, Arc<Vec<Tool>>)]) -> Self {
        let mut by_name: BTreeMap<String, Vec<(usize, &Tool)>> = BTreeMap::new();
        for (i, (prefix, tools)) in per_upstream.iter().enumerate() {
            for t in tools.iter() {
                by_name
                    .entry(format!("{prefix}{}", t.name))
                    .or_default()
                    .push((i, t));
            }
        }
        let mut out = Catalog::default();
        let mut tools = Vec::with_capacity(by_name.len());
        for (name, owners) in by_name {
            if owners.len() > 1 {
                out.conflicts.push(Conflict {
                    name,
                    upstreams: owners
                        .iter()
                        .map(|(i, _)| links[*i].cfg.name.clone())
                        .collect(),
                });
                continue;
            }
            let (upstream, tool) = owners[0];
            let mut exposed = tool.clone();
            exposed.name = name.clone().into();
            tools.push(exposed);
            out.entries.insert(
                name,
                CatalogEntry {
                    upstream,
                    original: tool.name.as_ref().into(),
                    read_only_hint: tool
                        .annotations
                        .as_ref()
                        .and_then(|a| a.read_only_hint)
                        .unwrap_or(false),
                },
            );
        }
        out.tools = Arc::new(tools);
        out
    }

    /// The upstream and original name behind an exposed tool name.
    pub fn get(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.entries.get(exposed)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Upstream, UpstreamTransport};
    use rmcp::model::ToolAnnotations;

    fn link(name: &str) -> Arc<Link> {
        Arc::new(Link::new(Upstream {
            name: name.into(),
            transport: UpstreamTransport::Http {
                url: "http://x".into(),
                token_env: None,
                max_concurrent_requests: 1,
            },
            timeout: std::time::Duration::from_secs(1),
            required: true,
            prefix: format!("{name}__"),
            classified: Vec::new(),
        }))
    }

    fn tool(name: &'static str, ro: bool) -> Tool {
        let mut t = Tool::new(name, "d", Arc::new(Default::default()));
        if ro {
            t.annotations = Some(ToolAnnotations::new().read_only(true));
        }
        t
    }

    #[test]
    fn namespaces_and_keeps_metadata() {
        let links = [link("a"), link("b")];
        let c = Catalog::build(
            &links,
            &[
                (
                    "a__",
                    Arc::new(vec![tool("post", false), tool("get", true)]),
                ),
                ("b__", Arc::new(vec![tool("post", false)])),
            ],
        );
        assert_eq!(c.len(), 3);
        let names: Vec<_> = c.tools.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["a__get", "a__post", "b__post"]);
        let e = c.get("b__post").unwrap();
        assert_eq!(
            (e.upstream, &*e.original, e.read_only_hint),
            (1, "post", false)
        );
        assert!(c.get("a__get").unwrap().read_only_hint);
        assert_eq!(c.tools[0].description.as_deref(), Some("d"));
        assert!(c.get("post").is_none());
    }

    #[test]
    fn conflicting_names_are_withheld_not_shadowed() {
        let links = [link("a"), link("b")];
        let c = Catalog::build(
            &links,
            &[
                ("", Arc::new(vec![tool("post", false), tool("x", false)])),
                ("", Arc::new(vec![tool("post", false)])),
            ],
        );
        assert!(c.get("post").is_none());
        assert!(c.get("x").is_some());
        assert_eq!(
            c.conflicts,
            vec![Conflict {
                name: "post".into(),
                upstreams: vec!["a".into(), "b".into()]
            }]
        );
    }
}
