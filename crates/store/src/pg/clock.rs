//! The clock of the shared store: the database server's, not the gateway instance's.
//!
//! Rate-limit windows, approval, lease and session expiry are decided by comparing times that
//! several instances write and read. If each instance used its own clock, two instances whose
//! clocks disagree would disagree about them: one ahead by a window would start a fresh window
//! (and delete the other's) and let a `limits` counter be spent again; one behind would take an
//! approval or lease that already expired for live, or make every approval of the others look
//! expired. So on PostgreSQL every such time is read from the database, in the transaction (on
//! the connection) that reads and changes the rows, and all instances share one clock. (SQLite
//! is one host's file and keeps the host's clock, `crate::clock`.)
//!
//! As with the local clock, a reading never goes backwards within one store: if the database
//! host's clock is stepped back, the store's time stands still until it catches up, which can
//! only make expiries earlier and windows fuller, never the opposite.

use std::sync::atomic::{AtomicI64, Ordering};

use postgres::GenericClient;

/// The database's time in Unix milliseconds, as an SQL expression. `clock_timestamp()` rather
/// than `now()`: the time the statement runs, not the time its transaction began.
pub(crate) const NOW_MS_SQL: &str = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The database's clock, as one store reads it.
#[derive(Debug)]
pub(crate) struct DbClock {
    /// The latest time read so far, Unix milliseconds.
    latest_ms: AtomicI64,
}

impl DbClock {
    pub(crate) fn new() -> DbClock {
        DbClock {
            latest_ms: AtomicI64::new(i64::MIN),
        }
    }

    /// The database's time in Unix milliseconds, never less than a reading before.
    pub(crate) fn now_ms(&self, c: &mut impl GenericClient) -> Result<i64, postgres::Error> {
        let now: i64 = c
            .query_one(&format!("SELECT {NOW_MS_SQL}"), &[])?
            .try_get(0)?;
        let before = self.latest_ms.fetch_max(now, Ordering::AcqRel);
        Ok(before.max(now))
    }

    /// The database's time in Unix seconds, never less than a reading before.
    pub(crate) fn now_seconds(&self, c: &mut impl GenericClient) -> Result<u64, postgres::Error> {
        // Before 1970 only if the database's clock is broken; that is a window of its own,
        // never a wider one.
        Ok(u64::try_from(self.now_ms(c)? / 1000).unwrap_or(0))
    }
}
