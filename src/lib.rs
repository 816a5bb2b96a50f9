//! toolgate: an MCP tool-call gateway that makes side effects safe, durable and accountable.
//!
//! # Layout
//!
//! A `tools/call` travels down this list; nothing lower imports anything higher.
//!
//! - [`config`]: the gateway's YAML file, raw → validated, with file:line:column errors.
//! - [`server`]: binds the MCP and admin listeners, builds the shared handles, shuts down
//!   (`server::stdio`: the `serve --stdio` transport that drains in-flight calls on a signal).
//! - [`fastpath`]: a plain `tools/call` POST straight to the pipeline, bypassing rmcp's tasks
//!   (`fastpath::headers`: the header checks it makes as rmcp would).
//! - [`transport`]: the rmcp `ServerHandler` edge: MCP requests in, JSON-RPC results out.
//! - [`session`]: bearer token → [`call::Caller`]; nothing else.
//! - [`policy`]: pure gates (binding, idempotency, spam loop, `_meta` shape) → `Permit` or `Denial`.
//! - [`safety`]: the live index of hard stops and spam windows the gates read.
//! - [`upstream`]: tool servers (child processes or Streamable HTTP), supervision, catalog.
//!   [`upstream::http`] is the lean HTTP client: `endpoint`, `message` (reading answers),
//!   `sse` (event-stream parsing) and `lifecycle` (handshake, pings, GET stream, close).
//! - [`pipeline`]: the one function a tool call runs through: gates, durable intent,
//!   forward, durable outcome and audit record (`pipeline::resolve`: which upstream serves a
//!   called name, also while that upstream is not connected).
//! - [`journal`]: the narrow storage interface and its SQLite writer thread (group commit),
//!   audit hash chain, hard stops (`journal::access`: why the data dir or journal file cannot
//!   be opened, in an operator's words).
//! - [`budget`]: SLO math over the journal's commit feed: rings, burn alerts, bands, status.
//!   [`budget::engine`] holds the state; `engine::observe` counts, `engine::alerts` evaluates.
//! - [`flags`]: feature flags of new capabilities, read by the freeze gate.
//! - [`maintenance`]: background work: budget feed and ticks, audit-gap rule, key pruning,
//!   audit retention.
//! - [`slo`]: SLO definitions.
//! - [`incident`]: incidents (hard stops, page alerts, dependency incidents), the budget they
//!   consumed, postmortem bundles and their Markdown drafts.
//! - [`admin`]: health, readiness, status, events, flags, metrics, the page, hard stops,
//!   in-doubt resolution and incidents.
//! - [`status_cli`]: `toolgate status`: the admin `/v1/status` document as a terminal table.
//! - [`audit_cli`]: `toolgate audit export|verify|anchor`: streaming journal export (JSON Lines or
//!   CSV, [`journal::export`]), offline verification of an export or the live chain.
//! - [`incident_cli`]: `toolgate incident list|bundle`: the same answers offline from a data dir.
//! - [`slo_rules`]: `toolgate slo rules`: Prometheus recording and burn-rate alert rules.
//! - [`call`], [`error`]: domain types and the one exhaustive error → JSON-RPC mapping.
//! - [`clock`], [`canonical`]: injectable time; canonical JSON and its SHA-256.
//! - [`demo`]: the demo social-platform MCP server behind the embedded default.
//! - [`bench`]: the direct-vs-proxied benchmark; [`bench_client`]: the benches' load generator.
//! - [`bench_side_effects`], [`bench_budget`]: durable side-effect calls through the gateway;
//!   budget engine accounting, status cost and restart time.
//! - [`bench_audit`]: `audit export` and `audit verify` over a journal of 1M records.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit_cli;
pub mod bench;
pub mod bench_audit;
pub mod bench_budget;
pub mod bench_client;
pub mod bench_side_effects;
pub mod budget;
pub mod call;
pub mod canonical;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod fastpath;
pub mod flags;
pub mod incident;
pub mod incident_cli;
pub mod journal;
pub mod maintenance;
pub mod pipeline;
pub mod policy;
pub mod safety;
pub mod server;
pub mod session;
pub mod slo;
pub mod slo_rules;
pub mod status_cli;
pub mod transport;
pub mod upstream;
