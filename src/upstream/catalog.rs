//! The merged tool catalog: every connected upstream's tools under their exposed names, and
//! which not-connected upstream a name that is not exposed right now may belong to.

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

/// A not-connected upstream that may serve a name absent from `tools/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the upstream in config order.
    pub upstream: usize,
    /// The tool's own name on that upstream (the exposed name without the prefix).
    pub original: Arc<str>,
    /// The tool's `readOnlyHint` from the upstream's last `tools/list`; `None` when that list
    /// did not name it (or the upstream never listed), so its kind is not known.
    pub read_only_hint: Option<bool>,
}

/// What an exposed name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A tool of a connected upstream.
    Found(&'a CatalogEntry),
    /// Not exposed right now, but one of these not-connected upstreams may serve it (more than
    /// one only for names no prefix attributes).
    Down(Vec<Candidate>),
    /// No upstream, connected or not, can serve it.
    Unknown,
}

/// Immutable snapshot of all exposed tools; replaced whole when any upstream changes.
#[derive(Debug, Default)]
pub struct Catalog {
    /// `tools/list` as the runner sees it.
    pub tools: Arc<Vec<Tool>>,
    entries: HashMap<String, CatalogEntry>,
    pub conflicts: Vec<Conflict>,
    /// Exposed names from the last `tools/list` of upstreams that are not connected now.
    down: HashMap<String, Vec<Candidate>>,
    /// Not-connected upstreams that never listed, with their non-empty prefix: every name with
    /// that prefix is theirs.
    unlisted: Vec<(usize, String)>,
    /// Not-connected upstreams with the empty prefix: any name nobody else claims may be theirs,
    /// whatever they listed last (a restarted server may bring new tools).
    bare: Vec<usize>,
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

    /// Records that upstream `upstream` is not connected, with its last tool list (`None`
    /// before its first), so that [`Catalog::lookup`] can attribute its names while it is down.
    pub fn mark_down(&mut self, upstream: usize, prefix: &str, listed: Option<&[Tool]>) {
        if let Some(tools) = listed {
            for t in tools {
                let hint = t.annotations.as_ref().and_then(|a| a.read_only_hint);
                self.down
                    .entry(format!("{prefix}{}", t.name))
                    .or_default()
                    .push(Candidate {
                        upstream,
                        original: t.name.as_ref().into(),
                        read_only_hint: Some(hint.unwrap_or(false)),
                    });
            }
        } else if !prefix.is_empty() {
            self.unlisted.push((upstream, prefix.to_string()));
        }
        if prefix.is_empty() {
            self.bare.push(upstream);
        }
    }

    /// The upstream and original name behind an exposed tool name.
    pub fn get(&self, exposed: &str) -> Option<&CatalogEntry> {
        self.entries.get(exposed)
    }

    /// Resolves a called name: a connected upstream's tool, else the not-connected upstreams
    /// it may belong to (by their last tool list, then by prefix, then the empty-prefix ones),
    /// else unknown. Only names no upstream could serve are unknown, so a runner never gives up
    /// on a tool because its upstream is restarting or has not connected yet.
    pub fn lookup(&self, exposed: &str) -> Lookup<'_> {
        if let Some(e) = self.entries.get(exposed) {
            return Lookup::Found(e);
        }
        if let Some(c) = self.down.get(exposed) {
            return Lookup::Down(c.clone());
        }
        let by_prefix: Vec<_> = self
            .unlisted
            .iter()
            .filter(|(_, p)| exposed.len() > p.len() && exposed.starts_with(p.as_str()))
            .map(|(i, p)| Candidate {
                upstream: *i,
                original: exposed[p.len()..].into(),
                read_only_hint: None,
            })
            .collect();
        if !by_prefix.is_empty() {
            return Lookup::Down(by_prefix);
        }
        if !self.bare.is_empty() {
            return Lookup::Down(
                self.bare
                    .iter()
                    .map(|&i| Candidate {
                        upstream: i,
                        original: exposed.into(),
                        read_only_hint: None,
                    })
                    .collect(),
            );
        }
        Lookup::Unknown
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

    fn down(upstream: usize, original: &str, read_only_hint: Option<bool>) -> Lookup<'static> {
        Lookup::Down(vec![Candidate {
            upstream,
            original: original.into(),
            read_only_hint,
        }])
    }

    #[test]
    fn names_of_down_upstreams_are_attributed_not_unknown() {
        let links = [link("a"), link("b"), link("d")];
        // a is connected; b listed once and is down now; d never connected.
        let mut c = Catalog::build(
            &links,
            &[
                ("a__", Arc::new(vec![tool("post", false)])),
                ("b__", Arc::new(vec![])),
                ("d__", Arc::new(vec![])),
            ],
        );
        c.mark_down(1, "b__", Some(&[tool("get", true), tool("post", false)]));
        c.mark_down(2, "d__", None);
        assert!(matches!(c.lookup("a__post"), Lookup::Found(e) if e.upstream == 0));
        // Down upstreams' tools stay out of tools/list.
        let names: Vec<_> = c.tools.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["a__post"]);
        // By the last tool list, with its readOnlyHint.
        assert_eq!(c.lookup("b__get"), down(1, "get", Some(true)));
        assert_eq!(c.lookup("b__post"), down(1, "post", Some(false)));
        // b listed and did not name it: unknown, as it would be with b connected.
        assert_eq!(c.lookup("b__nope"), Lookup::Unknown);
        // Never listed: every name with its prefix is its own, of unknown kind.
        assert_eq!(c.lookup("d__publish"), down(2, "publish", None));
        assert_eq!(c.lookup("d__"), Lookup::Unknown);
        assert_eq!(c.lookup("a__nope"), Lookup::Unknown);
        assert_eq!(c.lookup("nope"), Lookup::Unknown);
    }

    #[test]
    fn unattributable_names_go_to_every_down_empty_prefix_upstream() {
        let links = [link("a"), link("b"), link("c")];
        let ups = [
            ("a__", Arc::new(vec![tool("post", false)])),
            ("", Arc::new(vec![])),
            ("", Arc::new(vec![])),
        ];
        let mut c = Catalog::build(&links, &ups);
        // b listed `get` and is down; c never listed.
        c.mark_down(1, "", Some(&[tool("get", true)]));
        c.mark_down(2, "", None);
        assert_eq!(c.lookup("get"), down(1, "get", Some(true)));
        let both = |name: &str| {
            Lookup::Down(
                [1, 2]
                    .map(|upstream| Candidate {
                        upstream,
                        original: name.into(),
                        read_only_hint: None,
                    })
                    .to_vec(),
            )
        };
        // Anything else may be either's (a restarted b may bring new tools).
        assert_eq!(c.lookup("other"), both("other"));
        assert_eq!(c.lookup("a__nope"), both("a__nope"));
        assert!(matches!(c.lookup("a__post"), Lookup::Found(_)));
        // Only c down: names go to c alone; nobody down: unknown as before.
        let mut c = Catalog::build(&links, &ups);
        c.mark_down(2, "", None);
        assert_eq!(c.lookup("x"), down(2, "x", None));
        let c = Catalog::build(&links, &ups);
        assert_eq!(c.lookup("x"), Lookup::Unknown);
    }
}
