//! Rate-limit and budget counters on PostgreSQL: the fixed windows of `sqlite/counters.rs`.
//!
//! One transaction per call: every counter row of the call is created if missing and locked
//! (`SELECT ... FOR UPDATE`) in key order — the same order in every instance, so two instances
//! cannot deadlock — then checked and charged in the order given. A concurrent reservation of
//! the same counter in another instance waits for the lock and then sees the charge, so the last
//! unit is taken once.

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
    /// Charges every reservation in one transaction, or none of them. The clock is the store's.
    pub fn reserve(&self, reservations: &[Reservation]) -> Result<Reserved, StoreError> {
        self.reserve_at(reservations, crate::sqlite::now_seconds()?)
    }

    /// [`reserve`](Self::reserve) at a given time (seconds since the Unix epoch), for tests.
    pub fn reserve_at(
        &self,
        reservations: &[Reservation],
        now: u64,
    ) -> Result<Reserved, StoreError> {
        let mut rows = Vec::with_capacity(reservations.len());
        for r in reservations {
            let win = window(r, now)?;
            rows.push((r.clone(), win, to_sql(win)?, to_sql(r.amount)?));
        }
        let target = self.target().to_owned();
        self.pool
            .run("reserving rate-limit counters", move |c, fence| {
                let err = |e| StoreError::postgres(&target, "reserving rate-limit counters", e);
                let mut tx = c.transaction().map_err(err)?;
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

    /// What the current window of `key` holds (0 when nothing was charged).
    pub fn counter(&self, key: &str, per_seconds: u64) -> Result<u64, StoreError> {
        let win = to_sql(
            crate::sqlite::now_seconds()?
                .checked_div(per_seconds)
                .ok_or(StoreError::Bug {
                    what: "a limit window of zero seconds",
                })?,
        )?;
        let key = key.to_owned();
        let target = self.target().to_owned();
        self.pool.run("reading a counter", move |c, _| {
            let mut tx = c
                .transaction()
                .map_err(|e| StoreError::postgres(&target, "reading a counter", e))?;
            used(&mut tx, &key, win, false)
                .map_err(|e| StoreError::postgres(&target, "reading a counter", e))
        })
    }
}
