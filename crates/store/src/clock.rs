//! The store's clock: wall-clock time that never goes backwards within a process.
//!
//! Approval and lease expiry and rate-limit windows are decided on wall-clock time. If the system
//! clock is stepped back (an operator, a bad NTP source, a VM restored from a snapshot), the plain
//! clock would make an approval or lease the gateway has already seen expire valid again, and move
//! a used-up rate-limit counter into an older, empty window. Every time the store reads is
//! therefore the latest it has read so far: after a backwards step the store's time stands still
//! until the real clock catches up, which can only make expiries earlier and windows fuller, never
//! the opposite. Audit records keep the real clock (`writer.rs`): they record time, and the chain
//! is ordered by sequence number, not by time.

use std::sync::atomic::{AtomicI64, Ordering};

/// The latest wall-clock time read so far, in Unix milliseconds.
static LATEST_MS: AtomicI64 = AtomicI64::new(i64::MIN);

/// Unix milliseconds, never less than any value returned before in this process.
pub(crate) fn now_ms() -> i64 {
    let now = jiff::Timestamp::now().as_millisecond();
    let before = LATEST_MS.fetch_max(now, Ordering::AcqRel);
    before.max(now)
}
