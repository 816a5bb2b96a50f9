//! The wire contract in `proto/` checked against what the Rust code really accepts and emits.
//!
//! Each schema is compiled as JSON Schema draft 2020-12, then held against the parser (configs
//! and SLO files both ways: what one accepts the other accepts, what one rejects the other
//! rejects) and against real outputs (error data, result `_meta`, audit records and hard stops
//! written by the SQLite journal and read back from its file). A drift on either side fails
//! here. No network, no child processes.
//!
//! One module per schema (or group of schemas); this file holds the imports and helpers they
//! share (each module starts with `use super::*`).

#[path = "../common/schema.rs"]
mod schema;

mod admin;
mod audit;
mod config;
mod errors;
mod hard_stops;
mod meta;
mod packaging;
mod records;
mod schemas;
mod sli_event;
mod slo;
mod status;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonschema::Validator;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::{Value, json};
use toolgate::call::{Denial, FailureClass, Reason};
use toolgate::clock::rfc3339;
use toolgate::config::{Action, Config, EMBEDDED_DEFAULT, EMBEDDED_NAME, Lane};
use toolgate::error::{
    GatewayError, IDEMPOTENCY, REFUSED_BY_POLICY, UPSTREAM_FAILURE, UpstreamFault,
};
use toolgate::journal::sqlite::SqliteJournal;
use toolgate::journal::{
    AuditRecord, Claim, GENESIS_HASH, HardStop, HardStopKind, Intent, KeyRecord, KeyState, Outcome,
    Proof, RecordKind, Resolution, Settle, Store,
};
use toolgate::slo::EventKind;

/// Every runner event type (the contract tests of both the SLO file and the SLI events use
/// it); `slo::enums` matches on each so a new type fails to compile until it is listed.
const ALL_EVENT_KINDS: [EventKind; 7] = [
    EventKind::JobStarted,
    EventKind::EpisodeFinished,
    EventKind::PostVerified,
    EventKind::InboundVisible,
    EventKind::AutoReplySent,
    EventKind::WrongAccountDetected,
    EventKind::DependencyIncident,
];

/// Every failure class (audit records and the SLO file's `budget_classes`); `audit` matches on
/// each so a new class fails to compile until it is listed.
const ALL_FAILURE_CLASSES: [FailureClass; 5] = [
    FailureClass::PolicyBlocked,
    FailureClass::PlatformRejected,
    FailureClass::ToolFailure,
    FailureClass::RunnerFailure,
    FailureClass::VerificationFailed,
];

const SCHEMAS: [&str; 12] = [
    "gateway-config.schema.json",
    "slo-definitions.schema.json",
    "request-meta.schema.json",
    "result-meta.schema.json",
    "error-data.schema.json",
    "audit-record.schema.json",
    "hard-stop.schema.json",
    "admin-api.schema.json",
    "sli-event.schema.json",
    "status.schema.json",
    "incident.schema.json",
    "incident-bundle.schema.json",
];

const AUDIT: &str = "audit-record.schema.json";
const HARD_STOP: &str = "hard-stop.schema.json";
const ADMIN: &str = "admin-api.schema.json";
const STATUS: &str = "status.schema.json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: impl AsRef<Path>) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `proto/<name>`, or one part of it with `name#/$defs/<def>`.
fn validator(name: &str) -> Arc<Validator> {
    schema::validator(name)
}

/// The schema `name` narrowed to one of its `$defs`.
fn def_validator(name: &str, def: &str) -> Arc<Validator> {
    validator(&format!("{name}#/$defs/{def}"))
}

fn violations(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} (at {:?})", e, e.instance_path().as_str()))
        .collect()
}

fn assert_valid(v: &Validator, instance: &Value, what: &str) {
    let errs = violations(v, instance);
    assert!(
        errs.is_empty(),
        "{what} does not match its schema:\n  {}\ninstance: {instance:#}",
        errs.join("\n  ")
    );
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn parse_config(text: &str) -> Result<Config, String> {
    Config::parse(text, "case.yml", Path::new("/etc/toolgate")).map_err(|e| e.to_string())
}

/// The wire name of a serde enum value.
fn wire<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// The values of the `enum` at `pointer` in proto/`file`, null left out.
fn schema_enum(file: &str, pointer: &str) -> BTreeSet<String> {
    let s = schema::schema_json(file);
    let e = s
        .pointer(pointer)
        .and_then(|n| n.get("enum"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("proto/{file} has no enum at {pointer}"));
    e.iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}
