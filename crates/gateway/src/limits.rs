//! Rate limits and budgets (DESIGN §3.1): reserved in the store before a call is forwarded, given
//! back when the upstream answers with a JSON-RPC error.
//!
//! Each contributing rule's `limit` becomes one [`Reservation`]; all of a call's reservations are
//! charged in one store transaction or none is. The counter key names the rule and whose counter
//! it is: `RULE|session|SESSION-ID`, `RULE|principal|PRINCIPAL` (a call without a principal, as
//! on stdio, shares the counter `-` with every other such call) or `RULE|global|*`.
//! Fail-closed: a `sum` argument that is missing or not a whole non-negative number denies the
//! call, and a counter that cannot be read or written denies it too.

use std::sync::Arc;

use portcullis_policy::Call;
use portcullis_policy::model::{KillAfterSpec, LimitScope, LimitSpec};
use portcullis_store::{Grant, Reservation, Reserved, Store, StoreError};
use serde_json::Value;

/// What the limits of one call came to.
#[derive(Debug)]
pub(crate) enum LimitOutcome {
    /// Every limit had room (or there were none); these charges can be given back.
    Granted(Vec<Grant>),
    /// The limit of `rule` is exhausted.
    Exceeded {
        /// The rule whose limit is exhausted.
        rule: String,
        /// For the audit log: what the window holds and allows.
        detail: String,
    },
    /// The call cannot be charged: a `sum` argument is missing or not a whole number.
    BadAmount {
        /// The rule whose `sum` could not be read.
        rule: String,
        /// What is wrong.
        detail: String,
    },
    /// The store failed; the call is denied.
    Failed(StoreError),
}

/// The counter key of `rule`'s limit for `call`.
pub(crate) fn counter_key(rule: &str, spec: &LimitSpec, call: &Call) -> String {
    match spec.by.unwrap_or(LimitScope::Session) {
        LimitScope::Session => format!("{rule}|session|{}", call.session.as_deref().unwrap_or("-")),
        LimitScope::Principal => format!(
            "{rule}|principal|{}",
            call.principal.as_deref().unwrap_or("-")
        ),
        LimitScope::Global => format!("{rule}|global|*"),
    }
}

/// How much `spec` charges for `call`: 1 for `calls`, the whole non-negative value of the `sum`
/// argument (a name, or a JSON pointer starting with `/`) otherwise.
fn amount(spec: &LimitSpec, call: &Call) -> Result<(u64, u64), String> {
    match (&spec.calls, &spec.sum, &spec.max) {
        (Some(max), _, _) => Ok((1, *max)),
        (None, Some(arg), Some(max)) => {
            let value = if arg.starts_with('/') {
                Value::Object(call.arguments.clone()).pointer(arg).cloned()
            } else {
                call.arguments.get(arg).cloned()
            };
            match value {
                None => Err(format!("the budget argument `{arg}` is missing")),
                Some(Value::Number(n)) => n.as_u64().map(|a| (a, *max)).ok_or_else(|| {
                    format!("the budget argument `{arg}` is not a whole non-negative number")
                }),
                Some(_) => Err(format!("the budget argument `{arg}` is not a number")),
            }
        }
        _ => Err("the limit has neither `calls` nor `sum` with `max`".to_owned()),
    }
}

/// Charges every limit of a call; see the module docs.
pub(crate) async fn reserve(
    store: &Arc<Store>,
    limits: &[(String, LimitSpec)],
    call: &Call,
) -> LimitOutcome {
    if limits.is_empty() {
        return LimitOutcome::Granted(Vec::new());
    }
    let mut reservations = Vec::with_capacity(limits.len());
    for (rule, spec) in limits {
        let (amount, max) = match amount(spec, call) {
            Ok(pair) => pair,
            Err(detail) => {
                return LimitOutcome::BadAmount {
                    rule: rule.clone(),
                    detail,
                };
            }
        };
        reservations.push(Reservation {
            key: counter_key(rule, spec, call),
            per_seconds: spec.per.seconds(),
            amount,
            max,
        });
    }
    let store = Arc::clone(store);
    let asked = reservations.clone();
    let result = tokio::task::spawn_blocking(move || store.reserve(&asked)).await;
    match result {
        Ok(Ok(Reserved::Granted(grants))) => LimitOutcome::Granted(grants),
        Ok(Ok(Reserved::Exceeded { index, used })) => {
            let rule = limits
                .get(index)
                .map_or_else(|| "internal-error".to_owned(), |(r, _)| r.clone());
            let detail = reservations.get(index).map_or_else(String::new, |r| {
                format!(
                    "the limit of rule `{rule}` is exhausted: {used} of {} used in the current {}s window, this call needs {}",
                    r.max, r.per_seconds, r.amount
                )
            });
            LimitOutcome::Exceeded { rule, detail }
        }
        Ok(Err(error)) => LimitOutcome::Failed(error),
        Err(_) => LimitOutcome::Failed(StoreError::Bug {
            what: "a counter task failed",
        }),
    }
}

/// Gives charges back in the background; a failure is logged (the budget stays spent, which
/// errs on the strict side).
pub(crate) fn release(store: &Arc<Store>, grants: Vec<Grant>) {
    if grants.is_empty() {
        return;
    }
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = store.release(&grants) {
            tracing::error!(%error, "cannot give back a rate-limit charge; the budget stays spent");
        }
    });
}

/// `kill_after: { denials, within }`: counts a session's denials in a sliding window and says
/// when the session has to end. Internal failures of the gateway are not the caller's probing
/// and are not counted.
#[derive(Debug)]
pub(crate) struct TripWire {
    times: std::collections::VecDeque<std::time::Instant>,
}

impl TripWire {
    pub(crate) fn new() -> Self {
        TripWire {
            times: std::collections::VecDeque::new(),
        }
    }

    /// Records a denial at `now`; true when `spec`'s threshold is reached.
    pub(crate) fn denied(&mut self, spec: Option<KillAfterSpec>, now: std::time::Instant) -> bool {
        let Some(spec) = spec else {
            return false;
        };
        let within = spec.within.as_duration();
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= within)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() >= usize::try_from(spec.denials).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(text: &str) -> LimitSpec {
        serde_json::from_str(text).unwrap()
    }

    fn call(args: Value) -> Call {
        let mut call = Call::tool_call("billing", "charge", args.as_object().unwrap().clone());
        call.session = Some("s-1".into());
        call
    }

    #[test]
    fn keys_name_rule_and_scope() {
        let c = call(json!({}));
        assert_eq!(
            counter_key("r", &spec(r#"{"calls":1,"per":"1h"}"#), &c),
            "r|session|s-1"
        );
        assert_eq!(
            counter_key("r", &spec(r#"{"calls":1,"per":"1h","by":"principal"}"#), &c),
            "r|principal|-"
        );
        assert_eq!(
            counter_key("r", &spec(r#"{"calls":1,"per":"1h","by":"global"}"#), &c),
            "r|global|*"
        );
    }

    #[test]
    fn sums_need_a_whole_non_negative_number() {
        let s = spec(r#"{"sum":"amount","max":100,"per":"1d"}"#);
        assert_eq!(amount(&s, &call(json!({"amount": 40}))), Ok((40, 100)));
        assert!(amount(&s, &call(json!({"amount": -1}))).is_err());
        assert!(amount(&s, &call(json!({"amount": 1.5}))).is_err());
        assert!(amount(&s, &call(json!({"amount": "40"}))).is_err());
        assert!(amount(&s, &call(json!({}))).is_err());
        let p = spec(r#"{"sum":"/order/total","max":100,"per":"1d"}"#);
        assert_eq!(
            amount(&p, &call(json!({"order": {"total": 7}}))),
            Ok((7, 100))
        );
    }

    #[test]
    fn trip_wire_counts_denials_in_a_sliding_window() {
        let spec: KillAfterSpec = serde_json::from_str(r#"{"denials":3,"within":"1m"}"#).unwrap();
        let start = std::time::Instant::now();
        let at = |s| start + std::time::Duration::from_secs(s);
        let mut wire = TripWire::new();
        assert!(!wire.denied(Some(spec), at(0)));
        assert!(!wire.denied(Some(spec), at(30)));
        // The first denial has left the window by now.
        assert!(!wire.denied(Some(spec), at(61)));
        assert!(wire.denied(Some(spec), at(62)));
        let mut off = TripWire::new();
        assert!((0..100).all(|s| !off.denied(None, at(s))));
    }
}
