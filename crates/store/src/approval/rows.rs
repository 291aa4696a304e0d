//! Approvals and leases read back from either engine's rows.
//!
//! Both engines select the same columns in the same order ([`APPROVAL_COLUMNS`],
//! [`LEASE_COLUMNS`]) and read them through [`ColumnRow`], so what an unreadable value means (an
//! unknown state is expired, an unreadable lease scope makes the lease inactive) is decided once.

use super::{Approval, ApprovalState, Lease, rfc3339};

/// The columns [`approval_from_row`] reads, in its order.
pub(crate) const APPROVAL_COLUMNS: &str = "id, state, digest, session, principal, server, tool, method, arguments, effect, rule, reason, mode, separate_approver, decision_id, created_at, expires_at, resolved_at, approver, channel, note, receipt_id";

/// The columns [`lease_from_row`] reads, in its order.
pub(crate) const LEASE_COLUMNS: &str = "id, session, principal, server, tool, args_under, created_at, expires_at, max_calls, used_calls, revoked_at, granted_by, note";

/// One result row of an engine, read by column position.
pub(crate) trait ColumnRow {
    /// The engine's error for a missing column or a value of another type.
    type Error;
    /// A text column.
    fn text(&self, at: usize) -> Result<String, Self::Error>;
    /// A nullable text column.
    fn opt_text(&self, at: usize) -> Result<Option<String>, Self::Error>;
    /// A 64-bit integer column.
    fn int(&self, at: usize) -> Result<i64, Self::Error>;
    /// A nullable 64-bit integer column.
    fn opt_int(&self, at: usize) -> Result<Option<i64>, Self::Error>;
    /// A boolean column.
    fn flag(&self, at: usize) -> Result<bool, Self::Error>;
}

/// An approval from a row of `SELECT {APPROVAL_COLUMNS}`.
pub(crate) fn approval_from_row<R: ColumnRow>(row: &R) -> Result<Approval, R::Error> {
    let state = row.text(1)?;
    let arguments = row.text(8)?;
    Ok(Approval {
        id: row.text(0)?,
        // An unknown state is read as expired: it can neither be resolved nor used.
        state: ApprovalState::parse(&state).unwrap_or(ApprovalState::Expired),
        digest: row.text(2)?,
        session: row.text(3)?,
        principal: row.opt_text(4)?,
        server: row.text(5)?,
        tool: row.text(6)?,
        method: row.text(7)?,
        arguments: serde_json::from_str(&arguments).unwrap_or(serde_json::Value::Null),
        effect: row.text(9)?,
        rule: row.text(10)?,
        reason: row.text(11)?,
        mode: row.text(12)?,
        separate_approver: row.flag(13)?,
        decision_id: row.text(14)?,
        created_at: rfc3339(row.int(15)?),
        expires_at: rfc3339(row.int(16)?),
        resolved_at: row.opt_int(17)?.map(rfc3339),
        approver: row.opt_text(18)?,
        channel: row.opt_text(19)?,
        note: row.opt_text(20)?,
        receipt_id: row.opt_text(21)?,
    })
}

/// A lease from a row of `SELECT {LEASE_COLUMNS}`, `active` as of `now` (Unix ms).
pub(crate) fn lease_from_row<R: ColumnRow>(row: &R, now: i64) -> Result<Lease, R::Error> {
    let args = row.text(5)?;
    let expires = row.int(7)?;
    let max = row.int(8)?;
    let used = row.int(9)?;
    let revoked = row.opt_int(10)?;
    // Unreadable scope: an empty list would widen the lease, so such a lease is inactive.
    let scope = serde_json::from_str::<Vec<(String, String)>>(&args);
    Ok(Lease {
        id: row.text(0)?,
        session: row.opt_text(1)?,
        principal: row.opt_text(2)?,
        server: row.opt_text(3)?,
        tool: row.text(4)?,
        active: revoked.is_none() && expires > now && used < max && scope.is_ok(),
        args_under: scope.unwrap_or_default(),
        created_at: rfc3339(row.int(6)?),
        expires_at: rfc3339(expires),
        max_calls: u64::try_from(max).unwrap_or(0),
        used_calls: u64::try_from(used).unwrap_or(u64::MAX),
        revoked_at: revoked.map(rfc3339),
        granted_by: row.text(11)?,
        note: row.opt_text(12)?,
    })
}

impl ColumnRow for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, at: usize) -> Result<String, Self::Error> {
        self.get(at)
    }
    fn opt_text(&self, at: usize) -> Result<Option<String>, Self::Error> {
        self.get(at)
    }
    fn int(&self, at: usize) -> Result<i64, Self::Error> {
        self.get(at)
    }
    fn opt_int(&self, at: usize) -> Result<Option<i64>, Self::Error> {
        self.get(at)
    }
    fn flag(&self, at: usize) -> Result<bool, Self::Error> {
        self.get(at)
    }
}

impl ColumnRow for postgres::Row {
    type Error = postgres::Error;
    fn text(&self, at: usize) -> Result<String, Self::Error> {
        self.try_get(at)
    }
    fn opt_text(&self, at: usize) -> Result<Option<String>, Self::Error> {
        self.try_get(at)
    }
    fn int(&self, at: usize) -> Result<i64, Self::Error> {
        self.try_get(at)
    }
    fn opt_int(&self, at: usize) -> Result<Option<i64>, Self::Error> {
        self.try_get(at)
    }
    fn flag(&self, at: usize) -> Result<bool, Self::Error> {
        self.try_get(at)
    }
}
