//! The table of open client connections: how long each has gone without a request, and room
//! for a newcomer when the table is full.
//!
//! Why: a flood of idle or half-open connections (a slow-loris pattern) must not shut real
//! clients out. When the table is full, a newcomer takes the place of the connection that has
//! gone longest without activity — connections that never completed a request go first — so
//! the flood evicts itself while clients that keep sending requests stay. Kafka's idle rule
//! (`connections.max.idle.ms`) is a periodic sweep of this table (one timer, not one per
//! request); the bound on a request's arrival is the connection's reader's. The table tells a
//! connection when to go; the connection task closes itself.
//!
//! Owns: bookkeeping only. Must not: touch sockets (each connection closes itself when told).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// One open connection as the table sees it.
pub struct Conn {
    id: u64,
    /// Milliseconds since the table's epoch of the last complete request or response.
    last_active_ms: AtomicU64,
    /// Whether a whole request ever arrived (half-open floods never get here).
    served: AtomicBool,
    /// Fired when the table closes this connection: its place went to a newcomer, or it was
    /// idle for longer than `connections.max.idle.ms`.
    pub close: Notify,
}

impl Conn {
    /// A request arrived whole, or a response went out.
    pub fn touch(&self, table: &ConnTable) {
        self.served.store(true, Ordering::Relaxed);
        self.last_active_ms.store(table.now_ms(), Ordering::Relaxed);
    }

    /// Eviction order: never-served before served, then least recently active.
    fn rank(&self) -> (bool, u64) {
        (
            self.served.load(Ordering::Relaxed),
            self.last_active_ms.load(Ordering::Relaxed),
        )
    }
}

pub struct ConnTable {
    max: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
}

/// A connection's place in the table; leaving it (drop) frees the place.
pub struct Slot {
    pub conn: Arc<Conn>,
    table: Arc<ConnTable>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.lock().open.remove(&self.conn.id);
    }
}

impl ConnTable {
    pub fn new(max: usize) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            max: max.max(1),
            epoch: Instant::now(),
            inner: Mutex::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The table holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection. When the table is full, the connection ranked first for
    /// eviction is removed and told to close; `evicted` says whether that happened.
    pub fn admit(self: &Arc<Self>) -> (Slot, bool) {
        let mut inner = self.lock();
        let mut evicted = false;
        if inner.open.len() >= self.max {
            if let Some(victim) = inner.open.values().min_by_key(|c| c.rank()).cloned() {
                inner.open.remove(&victim.id);
                // notify_one keeps the wake-up if the task is not waiting yet.
                victim.close.notify_one();
                evicted = true;
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let conn = Arc::new(Conn {
            id,
            last_active_ms: AtomicU64::new(self.now_ms()),
            served: AtomicBool::new(false),
            close: Notify::new(),
        });
        inner.open.insert(id, conn.clone());
        (
            Slot {
                conn,
                table: self.clone(),
            },
            evicted,
        )
    }

    /// Removes every connection idle for longer than `max_idle_ms` and tells it to close;
    /// returns how many.
    pub fn close_idle(&self, max_idle_ms: u64) -> usize {
        let now = self.now_ms();
        let mut inner = self.lock();
        let before = inner.open.len();
        inner.open.retain(|_, c| {
            let idle = now.saturating_sub(c.last_active_ms.load(Ordering::Relaxed)) > max_idle_ms;
            if idle {
                c.close.notify_one();
            }
            !idle
        });
        before - inner.open.len()
    }

    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_a_connection_that_never_completed_a_request_first() {
        let t = ConnTable::new(2);
        let (active, _) = t.admit();
        active.conn.touch(&t);
        let (half_open, _) = t.admit();
        let (newcomer, evicted) = t.admit();
        assert!(evicted);
        assert_eq!(t.len(), 2);
        let open: Vec<u64> = t.lock().open.keys().copied().collect();
        assert!(open.contains(&active.conn.id) && open.contains(&newcomer.conn.id));
        assert!(!open.contains(&half_open.conn.id));
    }

    #[test]
    fn among_served_connections_the_least_recently_active_goes() {
        let t = ConnTable::new(2);
        let (a, _) = t.admit();
        let (b, _) = t.admit();
        a.conn.touch(&t);
        std::thread::sleep(std::time::Duration::from_millis(5));
        b.conn.touch(&t);
        let (_c, evicted) = t.admit();
        assert!(evicted);
        assert!(!t.lock().open.contains_key(&a.conn.id));
        assert!(t.lock().open.contains_key(&b.conn.id));
    }

    #[test]
    fn close_idle_removes_only_connections_idle_past_the_limit() {
        let t = ConnTable::new(4);
        let (old, _) = t.admit();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let (fresh, _) = t.admit();
        assert_eq!(t.close_idle(20), 1);
        assert!(!t.lock().open.contains_key(&old.conn.id));
        assert!(t.lock().open.contains_key(&fresh.conn.id));
    }

    #[test]
    fn dropping_a_slot_frees_its_place() {
        let t = ConnTable::new(1);
        let (a, _) = t.admit();
        drop(a);
        let (_b, evicted) = t.admit();
        assert!(!evicted);
        assert_eq!(t.len(), 1);
    }
}
