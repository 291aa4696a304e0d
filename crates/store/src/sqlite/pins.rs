//! Tool pins (DESIGN §6): per server and tool, the fingerprint a human approved (or that was
//! recorded at first sight under `pin: tofu`), the fingerprint last seen, and why a tool is held
//! back. The gateway decides; the store only keeps the record.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::error::StoreError;

/// Where a tool stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// The seen fingerprint is the approved one.
    Approved,
    /// New or changed: hidden and denied until `portcullis pin approve`.
    Pending,
    /// The definition carries a poisoning finding or an unpinnable schema: hidden and denied
    /// until a human approves this exact definition.
    Quarantined,
}

impl PinStatus {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            PinStatus::Approved => "approved",
            PinStatus::Pending => "pending",
            PinStatus::Quarantined => "quarantined",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "approved" => Some(PinStatus::Approved),
            "pending" => Some(PinStatus::Pending),
            "quarantined" => Some(PinStatus::Quarantined),
            _ => None,
        }
    }
}

/// One pin row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRecord {
    /// Server name in the policy.
    pub server: String,
    /// Tool name as the server lists it.
    pub tool: String,
    /// The approved fingerprint, if any.
    pub approved_sha: Option<String>,
    /// The fingerprint last seen.
    pub seen_sha: String,
    /// The definition last seen, canonical JSON.
    pub seen_def: String,
    /// Where the tool stands.
    pub status: PinStatus,
    /// Why it is pending or quarantined.
    pub finding: Option<String>,
    /// When the row last changed (RFC 3339, UTC); set by the store.
    pub updated: String,
}

const COLUMNS: &str = "server, tool, approved_sha, seen_sha, seen_def, status, finding, updated";

fn row_to_pin(row: &rusqlite::Row<'_>) -> rusqlite::Result<(PinRecord, String)> {
    let status: String = row.get(5)?;
    Ok((
        PinRecord {
            server: row.get(0)?,
            tool: row.get(1)?,
            approved_sha: row.get(2)?,
            seen_sha: row.get(3)?,
            seen_def: row.get(4)?,
            status: PinStatus::Pending,
            finding: row.get(6)?,
            updated: row.get(7)?,
        },
        status,
    ))
}

/// An unknown stored status reads as quarantined: it can only hold a tool back.
fn finish(pair: (PinRecord, String)) -> PinRecord {
    let (mut pin, status) = pair;
    pin.status = PinStatus::parse(&status).unwrap_or(PinStatus::Quarantined);
    pin
}

impl SqliteStore {
    /// The pins of `server` (every server when `None`), ordered by server and tool.
    pub fn pins(&self, server: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        let path = self.db_path.as_path();
        let err = |e| StoreError::sqlite(path, "reading tool pins", e);
        let conn = self.lock_state();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pins WHERE ?1 IS NULL OR server = ?1 ORDER BY server, tool"
            ))
            .map_err(err)?;
        let rows = stmt.query_map(params![server], row_to_pin).map_err(err)?;
        rows.map(|r| r.map(finish).map_err(err)).collect()
    }

    /// One pin.
    pub fn pin(&self, server: &str, tool: &str) -> Result<Option<PinRecord>, StoreError> {
        let path = self.db_path.as_path();
        let conn = self.lock_state();
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM pins WHERE server = ?1 AND tool = ?2"),
            params![server, tool],
            row_to_pin,
        )
        .optional()
        .map(|p| p.map(finish))
        .map_err(|e| StoreError::sqlite(path, "reading a tool pin", e))
    }

    /// Writes (inserts or replaces) `pin`; `pin.updated` is set by the store.
    pub fn put_pin(&self, pin: &PinRecord) -> Result<(), StoreError> {
        let path = self.db_path.as_path();
        let conn = self.lock_state();
        conn.execute(
            &format!(
                "INSERT OR REPLACE INTO pins ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                pin.server,
                pin.tool,
                pin.approved_sha,
                pin.seen_sha,
                pin.seen_def,
                pin.status.as_str(),
                pin.finding,
                format!("{:.6}", jiff::Timestamp::now()),
            ],
        )
        .map(|_| ())
        .map_err(|e| StoreError::sqlite(path, "writing a tool pin", e))
    }

    /// Records `pin` only if the tool has no pin yet; returns the pin stored afterwards (this
    /// one, or the one another process recorded first).
    pub fn first_pin(&self, pin: &PinRecord) -> Result<PinRecord, StoreError> {
        let path = self.db_path.as_path();
        {
            let conn = self.lock_state();
            conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO pins ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    pin.server,
                    pin.tool,
                    pin.approved_sha,
                    pin.seen_sha,
                    pin.seen_def,
                    pin.status.as_str(),
                    pin.finding,
                    format!("{:.6}", jiff::Timestamp::now()),
                ],
            )
            .map_err(|e| StoreError::sqlite(path, "writing a tool pin", e))?;
        }
        self.pin(&pin.server, &pin.tool)?.ok_or(StoreError::Bug {
            what: "a pin vanished right after it was written",
        })
    }

    /// Approves the definition of `server.tool` last seen, if that is still `seen_sha`: one
    /// conditional statement, so a definition recorded in between is never approved unseen.
    /// `false` when the pin is gone or its definition changed.
    pub fn approve_seen(
        &self,
        server: &str,
        tool: &str,
        seen_sha: &str,
    ) -> Result<bool, StoreError> {
        let path = self.db_path.as_path();
        let conn = self.lock_state();
        conn.execute(
            "UPDATE pins SET approved_sha = seen_sha, status = ?4, finding = NULL, updated = ?5
             WHERE server = ?1 AND tool = ?2 AND seen_sha = ?3",
            params![
                server,
                tool,
                seen_sha,
                PinStatus::Approved.as_str(),
                format!("{:.6}", jiff::Timestamp::now()),
            ],
        )
        .map(|changed| changed == 1)
        .map_err(|e| StoreError::sqlite(path, "approving a tool pin", e))
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    #[test]
    fn pins_round_trip_and_approve() {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(&dir.path().join("state")).unwrap();
        assert_eq!(store.pin("fs", "read").unwrap(), None);
        let pin = PinRecord {
            server: "fs".into(),
            tool: "read".into(),
            approved_sha: Some("aa".into()),
            seen_sha: "bb".into(),
            seen_def: "{}".into(),
            status: PinStatus::Pending,
            finding: Some("changed since approval".into()),
            updated: String::new(),
        };
        store.put_pin(&pin).unwrap();
        let read = store.pin("fs", "read").unwrap().unwrap();
        assert_eq!(read.status, PinStatus::Pending);
        assert_eq!(read.finding.as_deref(), Some("changed since approval"));
        let approved = {
            assert!(
                store
                    .approve_seen(
                        "fs",
                        "read",
                        &store.pin("fs", "read").unwrap().unwrap().seen_sha
                    )
                    .unwrap()
            );
            store.pin("fs", "read").unwrap().unwrap()
        };
        assert_eq!(approved.approved_sha.as_deref(), Some("bb"));
        assert_eq!(approved.status, PinStatus::Approved);
        assert_eq!(approved.finding, None);
        assert_eq!(store.pins(Some("fs")).unwrap().len(), 1);
        assert_eq!(store.pins(Some("other")).unwrap().len(), 0);
        assert!(!store.approve_seen("fs", "nope", "aa").unwrap());
    }
}
