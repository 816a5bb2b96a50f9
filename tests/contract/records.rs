//! Fixtures for the journal-backed checks: audit records, key states and hard stops as the
//! gateway writes them, and the records read back from a journal file.

use super::*;

/// 2026-04-24T03:06:40Z: the journal's clock in these tests.
pub(crate) const T0: i64 = 1_777_000_000_000;

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A side-effect call record filled in as the pipeline fills it (CallCtx::record).
pub(crate) fn call_record(outcome: Outcome, at: i64) -> AuditRecord {
    let mut r = AuditRecord::new(
        new_id(),
        rfc3339(at),
        RecordKind::Call,
        "social__send_dm",
        outcome,
    );
    r.tenant = Some("acme".into());
    r.account = Some("acme-ig".into());
    r.platform = Some("instagram".into());
    r.lane = Some(Lane::Browser);
    r.action = Some(Action::Dm);
    r.target = Some("user-7".into());
    r.upstream = Some("social".into());
    r.capability = Some("dm_send".into());
    r.side_effect = true;
    r.latency_ms = 12.345;
    r.job_id = Some("job-1".into());
    r.episode_id = Some("episode-1".into());
    r
}

/// An operator record as src/admin/ops.rs writes it.
pub(crate) fn operator_record(action: &str, at: i64, by: &str, reason: &str) -> AuditRecord {
    let mut r = AuditRecord::new(
        new_id(),
        rfc3339(at),
        RecordKind::Operator,
        action,
        Outcome::Operator,
    );
    r.actor = Some(by.into());
    r.reason = Some(reason.into());
    r
}

pub(crate) fn keyed(mut r: AuditRecord, key: &str, attempt: u32) -> AuditRecord {
    r.idempotency_key = Some(key.into());
    r.fingerprint = Some(format!("{:064x}", key.len()));
    r.attempt = Some(attempt);
    r
}

fn intent(key: &str, at: i64) -> Intent {
    Intent {
        tenant: "acme".into(),
        key: key.into(),
        fingerprint: format!("{:064x}", key.len()),
        tool: "social__send_dm".into(),
        account: Some("acme-ig".into()),
        now_ms: at,
    }
}

pub(crate) async fn claim(j: &SqliteJournal, key: &str, at: i64) -> u32 {
    match j.claim(intent(key, at)).await.unwrap() {
        Claim::Claimed { attempt } => attempt,
        Claim::Taken(k) => panic!("key {key} is taken: {k:?}"),
    }
}

pub(crate) async fn settle(
    j: &SqliteJournal,
    key: &str,
    state: KeyState,
    result: Option<Value>,
    audit: AuditRecord,
) {
    let s = Settle {
        tenant: "acme".into(),
        key: key.into(),
        state,
        result,
        audit,
        now_ms: T0 + 1_000,
    };
    j.settle(s).await.unwrap();
}

pub(crate) fn hard_stop(kind: HardStopKind, audit: &AuditRecord, account: &str) -> HardStop {
    HardStop {
        id: new_id(),
        kind,
        tenant: audit.tenant.clone(),
        account: Some(account.into()),
        target: (kind == HardStopKind::SpamLoop)
            .then(|| audit.target.clone())
            .flatten(),
        reason: "tripped in a test".into(),
        audit_id: Some(audit.id.clone()),
        created_at: audit.time.clone(),
        created_ms: toolgate::clock::parse_rfc3339(&audit.time).unwrap(),
        cleared_at: None,
        cleared_by: None,
        clear_reason: None,
    }
}

/// The `POST .../resolve` answer as src/admin/ops.rs builds it.
pub(crate) fn resolve_response(k: &KeyRecord) -> Value {
    json!({"tenant": k.tenant, "key": k.key, "state": k.state, "attempt": k.attempt})
}

/// The stored audit records, straight from the database file, in chain order.
pub(crate) fn stored_records(db: &Path) -> Vec<Value> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT record FROM audit ORDER BY seq")
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|t| serde_json::from_str(&t.unwrap()).expect("a stored record is JSON"))
        .collect()
}

/// SHA-256 of the canonical JSON (keys sorted at every level, no whitespace) of `record`
/// without `hash`: the README's recipe, written independently of src/canonical.rs.
pub(crate) fn chain_hash(record: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    use sha2::Digest;
    let mut r = record.clone();
    r.as_object_mut().unwrap().remove("hash");
    let text = serde_json::to_string(&sorted(&r)).unwrap();
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}
