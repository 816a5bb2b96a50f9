//! Validation against the wire contract in `proto/`.
//!
//! `assert_valid("audit-record.schema.json", &value)` checks a value against a whole schema;
//! `assert_valid("admin-api.schema.json#/$defs/clear_request", &value)` against one part of
//! it. Every `proto/*.schema.json` is registered under its `$id`, so schemas may `$ref` each
//! other (`urn:toolgate:proto:hard-stop:1`). Compiled validators are cached per process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Registry, Validator};
use serde_json::{Value, json};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The `proto/` folder of the crate.
pub fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// `proto/<file>` parsed as JSON.
pub fn schema_json(file: &str) -> Value {
    let path = proto_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("proto/{file} is not JSON: {e}"))
}

/// Every `proto/*.schema.json` by file name, read once.
fn schemas() -> &'static HashMap<String, Value> {
    static SCHEMAS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        std::fs::read_dir(proto_dir())
            .expect("proto/ exists")
            .map(|e| e.expect("proto/ is readable").file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".schema.json"))
            .map(|n| {
                let v = schema_json(&n);
                (n, v)
            })
            .collect()
    })
}

/// The `$id` of `proto/<file>`.
pub fn schema_id(file: &str) -> &'static str {
    let s = schemas()
        .get(file)
        .unwrap_or_else(|| panic!("no proto/{file}"));
    s["$id"]
        .as_str()
        .unwrap_or_else(|| panic!("proto/{file} has no $id"))
}

/// All proto schemas, each under its `$id`.
pub fn registry() -> &'static Registry<'static> {
    static REGISTRY: OnceLock<Registry<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut builder = Registry::new();
        for (file, s) in schemas() {
            builder = builder
                .add(schema_id(file), s)
                .unwrap_or_else(|e| panic!("proto/{file}: {e}"));
        }
        builder
            .prepare()
            .expect("the proto schemas form a registry")
    })
}

/// Compiles any schema value (draft 2020-12, formats checked) with the proto schemas available
/// to its `$ref`s.
pub fn compile(schema: &Value) -> Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_registry(registry())
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema:#}"))
}

/// The compiled validator of `proto/<file>`, or of the part `file#/json/pointer` names.
pub fn validator(schema_file: &str) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(schema_file) {
        return v.clone();
    }
    let (file, fragment) = schema_file.split_once('#').unwrap_or((schema_file, ""));
    if !fragment.is_empty() {
        let part = schemas()
            .get(file)
            .and_then(|s| s.pointer(fragment))
            .is_some();
        assert!(part, "proto/{file} has nothing at #{fragment}");
    }
    let v = Arc::new(compile(&json!({
        "$schema": DRAFT,
        "$ref": format!("{}#{fragment}", schema_id(file)),
    })));
    cache
        .lock()
        .unwrap()
        .entry(schema_file.to_string())
        .or_insert(v)
        .clone()
}

/// Every way `value` violates the schema, one line each (empty when it is valid).
pub fn errors(schema_file: &str, value: &Value) -> Vec<String> {
    validator(schema_file)
        .iter_errors(value)
        .map(|e| {
            format!(
                "at {:?}: {e} (schema {})",
                e.instance_path().as_str(),
                e.schema_path().as_str()
            )
        })
        .collect()
}

pub fn is_valid(schema_file: &str, value: &Value) -> bool {
    validator(schema_file).is_valid(value)
}

/// Panics, listing every violation, unless `value` matches `proto/<schema_file>` (optionally
/// `#/$defs/<name>` of it).
pub fn assert_valid(schema_file: &str, value: &Value) {
    let errs = errors(schema_file, value);
    assert!(
        errs.is_empty(),
        "value does not match proto/{schema_file}:\n  {}\nvalue: {value:#}",
        errs.join("\n  ")
    );
}

/// Panics unless `value` violates `proto/<schema_file>`.
pub fn assert_invalid(schema_file: &str, value: &Value) {
    assert!(
        !is_valid(schema_file, value),
        "proto/{schema_file} accepts a value it should reject: {value:#}"
    );
}
