//! Rate-limit and budget counters (DESIGN §3.1).
//!
//! A counter is a key (rule, scope and whose counter, built by the gateway) and a *fixed window*:
//! the window of a call is `floor(now / per)`, counted from the Unix epoch. Fixed windows need one
//! row per key and make a reservation a single read-and-update; the price is that a caller can
//! spend up to twice the budget across a window boundary (the end of one window and the start of
//! the next). Policies that need a smoother limit use a shorter `per` with a smaller `max`.
//!
//! All reservations of one call happen in one `BEGIN IMMEDIATE` transaction: either every limit
//! of the call has room and all are charged, or none is. Because the transaction holds SQLite's
//! write lock, concurrent callers (other sessions, other gateway processes on the same state
//! directory) cannot both take the last unit.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use crate::error::StoreError;

/// One limit a call must fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The counter's key, e.g. `rule-id|session|s-1`.
    pub key: String,
    /// The window length in seconds (at least 1).
    pub per_seconds: u64,
    /// How much the call takes: 1 for `calls`, the argument's value for `sum`.
    pub amount: u64,
    /// The most the window may hold.
    pub max: u64,
}

/// A charge that was made and can be given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The counter's key.
    pub key: String,
    /// The window that was charged.
    pub window: u64,
    /// How much was charged.
    pub amount: u64,
}

/// What a reservation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Every limit had room; these charges were made.
    Granted(Vec<Grant>),
    /// The limit at this index of the request has no room; nothing was charged.
    Exceeded {
        /// Index into the reservations passed in.
        index: usize,
        /// What the window already holds.
        used: u64,
    },
}

impl SqliteStore {
    /// Charges every reservation in one transaction, or none of them. The clock is the store's.
    pub fn reserve(&self, reservations: &[Reservation]) -> Result<Reserved, StoreError> {
        self.reserve_at(reservations, now_seconds()?)
    }

    /// [`reserve`](Self::reserve) at a given time (seconds since the Unix epoch), for tests.
    pub fn reserve_at(
        &self,
        reservations: &[Reservation],
        now: u64,
    ) -> Result<Reserved, StoreError> {
        let path = self.db_path.as_path();
        let err = |during| move |e| StoreError::sqlite(path, during, e);
        let mut conn = self.lock_state();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("starting a counter transaction"))?;
        let mut grants = Vec::with_capacity(reservations.len());
        for (index, r) in reservations.iter().enumerate() {
            let window = now.checked_div(r.per_seconds).ok_or(StoreError::Bug {
                what: "a limit window of zero seconds",
            })?;
            let window_sql = to_sql(window)?;
            // Older windows of this key can never be charged again.
            tx.execute(
                "DELETE FROM counters WHERE key = ?1 AND window < ?2",
                params![r.key, window_sql],
            )
            .map_err(err("pruning old counter windows"))?;
            let used: i64 = tx
                .query_row(
                    "SELECT used FROM counters WHERE key = ?1 AND window = ?2",
                    params![r.key, window_sql],
                    |row| row.get(0),
                )
                .optional()
                .map_err(err("reading a counter"))?
                .unwrap_or(0);
            let used = u64::try_from(used).map_err(|_| StoreError::Bug {
                what: "a counter holds a negative value",
            })?;
            let fits = used.checked_add(r.amount).is_some_and(|sum| sum <= r.max);
            if !fits {
                // Dropping the transaction rolls back the charges made so far.
                return Ok(Reserved::Exceeded { index, used });
            }
            tx.execute(
                "INSERT INTO counters (key, window, used) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key, window) DO UPDATE SET used = used + excluded.used",
                params![r.key, window_sql, to_sql(r.amount)?],
            )
            .map_err(err("charging a counter"))?;
            grants.push(Grant {
                key: r.key.clone(),
                window,
                amount: r.amount,
            });
        }
        tx.commit().map_err(err("committing counters"))?;
        Ok(Reserved::Granted(grants))
    }

    /// Gives charges back (the upstream answered with a JSON-RPC error). A window that has
    /// passed meanwhile is simply gone; counters never go below zero.
    pub fn release(&self, grants: &[Grant]) -> Result<(), StoreError> {
        let path = self.db_path.as_path();
        let err = |during| move |e| StoreError::sqlite(path, during, e);
        let mut conn = self.lock_state();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("starting a counter transaction"))?;
        for g in grants {
            tx.execute(
                "UPDATE counters SET used = max(used - ?3, 0) WHERE key = ?1 AND window = ?2",
                params![g.key, to_sql(g.window)?, to_sql(g.amount)?],
            )
            .map_err(err("giving back a counter charge"))?;
        }
        tx.commit().map_err(err("committing counters"))
    }

    /// What the current window of `key` holds (0 when nothing was charged).
    pub fn counter(&self, key: &str, per_seconds: u64) -> Result<u64, StoreError> {
        let path = self.db_path.as_path();
        let window = now_seconds()?
            .checked_div(per_seconds)
            .ok_or(StoreError::Bug {
                what: "a limit window of zero seconds",
            })?;
        let conn = self.lock_state();
        let used: Option<i64> = conn
            .query_row(
                "SELECT used FROM counters WHERE key = ?1 AND window = ?2",
                params![key, to_sql(window)?],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| StoreError::sqlite(path, "reading a counter", e))?;
        Ok(used.and_then(|u| u64::try_from(u).ok()).unwrap_or(0))
    }
}

fn to_sql(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Bug {
        what: "a counter value does not fit SQLite's integer",
    })
}

pub(crate) fn now_seconds() -> Result<u64, StoreError> {
    u64::try_from(crate::clock::now_ms() / 1000).map_err(|_| StoreError::Bug {
        what: "the system clock is before 1970",
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tempfile::TempDir;

    use super::*;

    fn store() -> (TempDir, SqliteStore) {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(&dir.path().join("state")).unwrap();
        (dir, store)
    }

    fn calls(key: &str, max: u64) -> Reservation {
        Reservation {
            key: key.to_owned(),
            per_seconds: 3600,
            amount: 1,
            max,
        }
    }

    #[test]
    fn grants_up_to_max_then_refuses() {
        let (_dir, store) = store();
        for _ in 0..3 {
            assert!(matches!(
                store.reserve_at(&[calls("k", 3)], 7200).unwrap(),
                Reserved::Granted(_)
            ));
        }
        assert_eq!(
            store.reserve_at(&[calls("k", 3)], 7200).unwrap(),
            Reserved::Exceeded { index: 0, used: 3 }
        );
    }

    #[test]
    fn a_new_window_starts_empty() {
        let (_dir, store) = store();
        store.reserve_at(&[calls("k", 1)], 3599).unwrap();
        assert!(matches!(
            store.reserve_at(&[calls("k", 1)], 3599).unwrap(),
            Reserved::Exceeded { .. }
        ));
        assert!(matches!(
            store.reserve_at(&[calls("k", 1)], 3600).unwrap(),
            Reserved::Granted(_)
        ));
    }

    #[test]
    fn all_or_nothing_across_limits() {
        let (_dir, store) = store();
        store.reserve_at(&[calls("b", 1)], 10).unwrap();
        assert_eq!(
            store
                .reserve_at(&[calls("a", 5), calls("b", 1)], 10)
                .unwrap(),
            Reserved::Exceeded { index: 1, used: 1 }
        );
        // `a` was not charged by the refused reservation.
        let r = Reservation {
            amount: 5,
            ..calls("a", 5)
        };
        assert!(matches!(
            store.reserve_at(&[r], 10).unwrap(),
            Reserved::Granted(_)
        ));
    }

    #[test]
    fn sums_respect_the_budget_and_release_gives_back() {
        let (_dir, store) = store();
        let spend = |amount| Reservation {
            key: "budget".to_owned(),
            per_seconds: 86_400,
            amount,
            max: 100,
        };
        let Reserved::Granted(grants) = store.reserve_at(&[spend(60)], 5).unwrap() else {
            panic!("first spend refused");
        };
        assert_eq!(
            store.reserve_at(&[spend(41)], 5).unwrap(),
            Reserved::Exceeded { index: 0, used: 60 }
        );
        store.release(&grants).unwrap();
        assert!(matches!(
            store.reserve_at(&[spend(100)], 5).unwrap(),
            Reserved::Granted(_)
        ));
        assert_eq!(
            store.reserve_at(&[spend(1)], 5).unwrap(),
            Reserved::Exceeded {
                index: 0,
                used: 100
            }
        );
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    (0..10)
                        .filter(|_| {
                            matches!(
                                store.reserve(&[calls("shared", 25)]),
                                Ok(Reserved::Granted(_))
                            )
                        })
                        .count()
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 25);
        assert_eq!(store.counter("shared", 3600).unwrap(), 25);
    }

    #[test]
    fn two_stores_on_one_directory_share_counters() {
        let dir = TempDir::new().unwrap();
        let a = SqliteStore::open(&dir.path().join("state")).unwrap();
        let b = SqliteStore::open(&dir.path().join("state")).unwrap();
        assert!(matches!(
            a.reserve_at(&[calls("k", 1)], 1).unwrap(),
            Reserved::Granted(_)
        ));
        assert!(matches!(
            b.reserve_at(&[calls("k", 1)], 1).unwrap(),
            Reserved::Exceeded { .. }
        ));
    }
}
