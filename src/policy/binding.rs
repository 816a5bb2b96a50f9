//! Tenant/account binding: the account a side effect acts on must be the caller's own.

use serde_json::{Map, Value};

use crate::call::{Denial, Reason};
use crate::config::{Config, ToolPolicy};
use crate::policy::meta::CallMeta;

/// The account a call is bound to, once the gate has permitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub account: String,
    pub platform: Option<String>,
}

/// Checks that the account named by the tool's `account_arg` exists, belongs to `tenant`, and
/// matches the tool's platform, and that `_meta.tenant_id` / `_meta.account_id`, when present,
/// agree with the token's tenant and the argument.
pub fn check(
    cfg: &Config,
    tenant: &str,
    policy: &ToolPolicy,
    args: &Map<String, Value>,
    meta: &CallMeta,
) -> Result<Bound, Denial> {
    if let Some(claimed) = &meta.tenant_id
        && claimed != tenant
    {
        return Err(Denial::new(
            Reason::TenantMismatch,
            format!("_meta.tenant_id {claimed:?} is not the caller's tenant {tenant:?}"),
        ));
    }
    let account = match args.get(&policy.account_arg) {
        Some(Value::String(a)) if !a.is_empty() => a,
        Some(_) => {
            return Err(Denial::new(
                Reason::UnknownAccount,
                format!(
                    "argument {:?} must be a non-empty string naming the account",
                    policy.account_arg
                ),
            ));
        }
        None => {
            return Err(Denial::new(
                Reason::UnknownAccount,
                format!(
                    "the call names no account: argument {:?} is missing",
                    policy.account_arg
                ),
            ));
        }
    };
    if let Some(claimed) = &meta.account_id
        && claimed != account
    {
        return Err(Denial::new(
            Reason::WrongAccount,
            format!("_meta.account_id {claimed:?} differs from the account argument {account:?}"),
        ));
    }
    let owner = cfg
        .tenants
        .iter()
        .find_map(|t| t.accounts.iter().find(|a| &a.id == account).map(|a| (t, a)));
    let Some((owner, acct)) = owner else {
        return Err(Denial::new(
            Reason::UnknownAccount,
            format!("account {account:?} is not configured for any tenant"),
        ));
    };
    if owner.id != tenant {
        return Err(Denial::new(
            Reason::WrongAccount,
            format!("account {account:?} belongs to another tenant, not {tenant:?}"),
        ));
    }
    if let Some(platform) = &policy.platform
        && acct.platform.as_ref() != Some(platform)
    {
        return Err(Denial::new(
            Reason::WrongAccount,
            format!(
                "account {account:?} is on platform {:?}; this tool acts on {platform:?}",
                acct.platform.as_deref().unwrap_or("(none declared)")
            ),
        ));
    }
    Ok(Bound {
        account: account.clone(),
        platform: acct.platform.clone().or_else(|| policy.platform.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn cfg() -> Config {
        Config::parse(
            "version: 1
tenants:
  - {id: a, token_env: A, accounts: [{id: a-ig, platform: instagram}, {id: a-x}]}
  - {id: b, token_env: B, accounts: [{id: b-ig, platform: instagram}]}
",
            "t.yml",
            Path::new("."),
        )
        .unwrap()
    }

    fn ig() -> ToolPolicy {
        let mut p = ToolPolicy::unclassified(false);
        p.platform = Some("instagram".into());
        p
    }

    fn run(tenant: &str, args: Value, meta: CallMeta) -> Result<Bound, Denial> {
        check(&cfg(), tenant, &ig(), args.as_object().unwrap(), &meta)
    }

    #[test]
    fn own_account_on_the_right_platform_passes() {
        let b = run("a", json!({"account_id": "a-ig"}), CallMeta::default()).unwrap();
        assert_eq!(
            b,
            Bound {
                account: "a-ig".into(),
                platform: Some("instagram".into())
            }
        );
    }

    #[test]
    fn refusals() {
        let reason = |t: &str, args: Value, meta: CallMeta| run(t, args, meta).unwrap_err().reason;
        assert_eq!(
            reason("a", json!({"account_id": "b-ig"}), CallMeta::default()),
            Reason::WrongAccount
        );
        assert_eq!(
            reason("a", json!({"account_id": "a-x"}), CallMeta::default()),
            Reason::WrongAccount,
            "platform"
        );
        assert_eq!(
            reason("a", json!({"account_id": "zz"}), CallMeta::default()),
            Reason::UnknownAccount
        );
        assert_eq!(
            reason("a", json!({}), CallMeta::default()),
            Reason::UnknownAccount
        );
        assert_eq!(
            reason("a", json!({"account_id": 7}), CallMeta::default()),
            Reason::UnknownAccount
        );
        let meta = CallMeta {
            tenant_id: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(
            reason("a", json!({"account_id": "a-ig"}), meta),
            Reason::TenantMismatch
        );
        let meta = CallMeta {
            account_id: Some("a-x".into()),
            ..Default::default()
        };
        assert_eq!(
            reason("a", json!({"account_id": "a-ig"}), meta),
            Reason::WrongAccount
        );
        let meta = CallMeta {
            tenant_id: Some("a".into()),
            account_id: Some("a-ig".into()),
            ..Default::default()
        };
        assert!(run("a", json!({"account_id": "a-ig"}), meta).is_ok());
    }
}
