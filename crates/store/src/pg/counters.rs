//! Rate-limit and budget counters on PostgreSQL: the fixed windows of `sqlite/counters.rs`.
//!
//! One transaction per call: every counter row of the call is created if missing and locked
//! (`SELECT ... FOR UPDATE`) in key order — the same order in every instance, so two instances
//! cannot deadlock — then checked and charged in the order given. A concurrent reservation of
//! the same counter in another instance waits for the lock and then sees the charge, so the last
//! unit is taken once.

use std::sync::Arc;

use postgres::Transaction;

use super::{PgStore, to_sql};
use crate::error::StoreError;
use crate::sqlite::{Grant, Reservation, Reserved};

fn window(r: &Reservation, now: u64) -> Result<u64, StoreError> {
    now.checked_div(r.per_seconds).ok_or(StoreError::Bug {
        what: "a limit window of zero seconds",
    })
}

fn used(tx: &mut Transaction<'_>, key: &str, win: i64, lock: bool) -> Result<u64, postgres::Error> {
    let sql = if lock {
        "SELECT used FROM counters WHERE key = $1 AND win = $2 FOR UPDATE"
    } else {
        "SELECT used FROM counters WHERE key = $1 AND win = $2"
    };
    let used: Option<i64> = tx
        .query_opt(sql, &[&key, &win])?
        .map(|row| row.try_get(0))
        .transpose()?;
    Ok(used.and_then(|u| u64::try_from(u).ok()).unwrap_or(0))
}

impl PgStore {
    /// Charges every reservation in one transaction, or none of them. The windows are those of
    /// the database's clock, read in that transaction (`clock.rs`): every instance agrees on
    /// them, whatever its own clock says.
    pub fn reserve(&self, reservations: &[Reservation]) -> Result<Reserved, StoreError> {
        self.reserve_in(reservations, None)
    }

    /// [`reserve`](Self::reserve) in the windows of a given time (seconds since the Unix epoch)
    /// instead of the database's clock: for tests of window boundaries, never for a real call.
    pub fn reserve_at(
        &self,
        reservations: &[Reservation],
        now: u64,
    ) -> Result<Reserved, StoreError> {
        self.reserve_in(reservations, Some(now))
    }

    fn reserve_in(
        &self,
        reservations: &[Reservation],
        at: Option<u64>,
    ) -> Result<Reserved, StoreError> {
        let reservations = reservations.to_vec();
        let clock = Arc::clone(&self.clock);
        let target = self.target().to_owned();
        self.pool
            .run("reserving rate-limit counters", move |c, fence| {
                let err = |e| StoreError::postgres(&target, "reserving rate-limit counters", e);
                let mut tx = c.transaction().map_err(err)?;
                let now = match at {
                    Some(now) => now,
                    None => clock.now_seconds(&mut tx).map_err(err)?,
                };
                let mut rows = Vec::with_capacity(reservations.len());
                for r in reservations {
                    let win = window(&r, now)?;
                    let (win_sql, amount) = (to_sql(win)?, to_sql(r.amount)?);
                    rows.push((r, win, win_sql, amount));
                }
                let mut order: Vec<&(Reservation, u64, i64, i64)> = rows.iter().collect();
                order.sort_by(|a, b| (&a.0.key, a.2).cmp(&(&b.0.key, b.2)));
                for (r, _, win, _) in order {
                    tx.execute(
                        "DELETE FROM counters WHERE key = $1 AND win < $2",
                        &[&r.key, win],
                    )
                    .map_err(err)?;
                    tx.execute(
                        "INSERT INTO counters (key, win, used) VALUES ($1, $2, 0)
                     ON CONFLICT (key, win) DO NOTHING",
                        &[&r.key, win],
                    )
                    .map_err(err)?;
                    used(&mut tx, &r.key, *win, true).map_err(err)?;
                }
                let mut grants = Vec::with_capacity(rows.len());
                for (index, (r, window, win, amount)) in rows.iter().enumerate() {
                    let now_used = used(&mut tx, &r.key, *win, false).map_err(err)?;
                    if now_used.checked_add(r.amount).is_none_or(|sum| sum > r.max) {
                        // Dropping the transaction rolls back the charges made so far.
                        return Ok(Reserved::Exceeded {
                            index,
                            used: now_used,
                        });
                    }
                    tx.execute(
                        "UPDATE counters SET used = used + $3 WHERE key = $1 AND win = $2",
                        &[&r.key, win, amount],
                    )
                    .map_err(err)?;
                    grants.push(Grant {
                        key: r.key.clone(),
                        window: *window,
                        amount: r.amount,
                    });
                }
                fence.pass()?;
                tx.commit().map_err(err)?;
                Ok(Reserved::Granted(grants))
            })
    }

    /// Gives charges back; counters never go below zero.
    pub fn release(&self, grants: &[Grant]) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(grants.len());
        for g in grants {
            rows.push((g.key.clone(), to_sql(g.window)?, to_sql(g.amount)?));
        }
        let target = self.target().to_owned();
        self.pool
            .run("giving back a counter charge", move |c, fence| {
                let err = |e| StoreError::postgres(&target, "giving back a counter charge", e);
                let mut tx = c.transaction().map_err(err)?;
                for (key, win, amount) in &rows {
                    tx.execute(
                    "UPDATE counters SET used = greatest(used - $3, 0) WHERE key = $1 AND win = $2",
                    &[key, win, amount],
                )
                .map_err(err)?;
                }
                fence.pass()?;
                tx.commit().map_err(err)
            })
    }

    /// What the current window of `key` holds (0 when nothing was charged), by the database's
    /// clock.
    pub fn counter(&self, key: &str, per_seconds: u64) -> Result<u64, StoreError> {
        let key = key.to_owned();
        let clock = Arc::clone(&self.clock);
        let target = self.target().to_owned();
        self.pool.run("reading a counter", move |c, _| {
            let err = |e| StoreError::postgres(&target, "reading a counter", e);
            let mut tx = c.transaction().map_err(err)?;
            let now = clock.now_seconds(&mut tx).map_err(err)?;
            let win = to_sql(now.checked_div(per_seconds).ok_or(StoreError::Bug {
                what: "a limit window of zero seconds",
            })?)?;
            used(&mut tx, &key, win, false).map_err(err)
        })
    }
}
