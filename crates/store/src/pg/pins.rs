//! Tool pins on PostgreSQL (see `sqlite/pins.rs`).
//!
//! A tool seen for the first time by two instances at once gets one pin: [`PgStore::first_pin`]
//! inserts only when no row exists and returns the row that won, so every instance decides on
//! the same recorded fingerprint.

use postgres::Row;

use super::PgStore;
use crate::error::StoreError;
use crate::sqlite::{PinRecord, PinStatus};

const COLUMNS: &str = "server, tool, approved_sha, seen_sha, seen_def, status, finding, updated";

fn pin_row(row: &Row) -> Result<PinRecord, postgres::Error> {
    let status: String = row.try_get(5)?;
    Ok(PinRecord {
        server: row.try_get(0)?,
        tool: row.try_get(1)?,
        approved_sha: row.try_get(2)?,
        seen_sha: row.try_get(3)?,
        seen_def: row.try_get(4)?,
        // An unknown stored status reads as quarantined: it can only hold a tool back.
        status: PinStatus::parse(&status).unwrap_or(PinStatus::Quarantined),
        finding: row.try_get(6)?,
        updated: row.try_get(7)?,
    })
}

impl PgStore {
    /// The pins of `server` (every server when `None`), ordered by server and tool.
    pub fn pins(&self, server: Option<&str>) -> Result<Vec<PinRecord>, StoreError> {
        let server = server.map(str::to_owned);
        let target = self.target().to_owned();
        self.pool.run("reading tool pins", move |c, _| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM pins WHERE $1::TEXT IS NULL OR server = $1
                     ORDER BY server, tool"
                ),
                &[&server],
            )
            .and_then(|rows| rows.iter().map(pin_row).collect())
            .map_err(|e| StoreError::postgres(&target, "reading tool pins", e))
        })
    }

    /// One pin.
    pub fn pin(&self, server: &str, tool: &str) -> Result<Option<PinRecord>, StoreError> {
        let (server, tool) = (server.to_owned(), tool.to_owned());
        let target = self.target().to_owned();
        self.pool.run("reading a tool pin", move |c, _| {
            c.query_opt(
                &format!("SELECT {COLUMNS} FROM pins WHERE server = $1 AND tool = $2"),
                &[&server, &tool],
            )
            .and_then(|row| row.as_ref().map(pin_row).transpose())
            .map_err(|e| StoreError::postgres(&target, "reading a tool pin", e))
        })
    }

    fn write_pin(&self, pin: &PinRecord, only_new: bool) -> Result<PinRecord, StoreError> {
        let pin = pin.clone();
        let target = self.target().to_owned();
        let on_conflict = if only_new {
            "DO NOTHING"
        } else {
            "DO UPDATE SET approved_sha = excluded.approved_sha, seen_sha = excluded.seen_sha,
                 seen_def = excluded.seen_def, status = excluded.status,
                 finding = excluded.finding, updated = excluded.updated"
        };
        self.pool.run("writing a tool pin", move |c, fence| {
            let err = |e| StoreError::postgres(&target, "writing a tool pin", e);
            // One statement that commits by itself.
            fence.pass()?;
            c.execute(
                &format!(
                    "INSERT INTO pins ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (server, tool) {on_conflict}"
                ),
                &[
                    &pin.server,
                    &pin.tool,
                    &pin.approved_sha,
                    &pin.seen_sha,
                    &pin.seen_def,
                    &pin.status.as_str(),
                    &pin.finding,
                    &crate::queue::now_rfc3339(),
                ],
            )
            .map_err(err)?;
            let row = c
                .query_one(
                    &format!("SELECT {COLUMNS} FROM pins WHERE server = $1 AND tool = $2"),
                    &[&pin.server, &pin.tool],
                )
                .map_err(err)?;
            pin_row(&row).map_err(err)
        })
    }

    /// Approves the definition of `server.tool` last seen, if that is still `seen_sha`: one
    /// conditional statement, so a definition another instance recorded in between is never
    /// approved unseen. `false` when the pin is gone or its definition changed.
    pub fn approve_seen(
        &self,
        server: &str,
        tool: &str,
        seen_sha: &str,
    ) -> Result<bool, StoreError> {
        let (server, tool, seen_sha) = (server.to_owned(), tool.to_owned(), seen_sha.to_owned());
        let target = self.target().to_owned();
        self.pool.run("approving a tool pin", move |c, fence| {
            // One statement that commits by itself.
            fence.pass()?;
            c.execute(
                "UPDATE pins SET approved_sha = seen_sha, status = $4, finding = NULL, updated = $5
                 WHERE server = $1 AND tool = $2 AND seen_sha = $3",
                &[
                    &server,
                    &tool,
                    &seen_sha,
                    &PinStatus::Approved.as_str(),
                    &crate::queue::now_rfc3339(),
                ],
            )
            .map(|changed| changed == 1)
            .map_err(|e| StoreError::postgres(&target, "approving a tool pin", e))
        })
    }

    /// Writes (inserts or replaces) `pin`; `pin.updated` is set by the store.
    pub fn put_pin(&self, pin: &PinRecord) -> Result<(), StoreError> {
        self.write_pin(pin, false).map(|_| ())
    }

    /// Records `pin` only if the tool has no pin yet; returns the pin stored afterwards (this
    /// one, or the one another instance recorded first).
    pub fn first_pin(&self, pin: &PinRecord) -> Result<PinRecord, StoreError> {
        self.write_pin(pin, true)
    }
}
