//! In-process dedup store: a map of id → in-flight or seen-until, purged periodically.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Claim, DedupError, DedupKey, DedupStore};

/// How often expired ids are swept out.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

enum Entry {
    /// Claimed by a request; waiters watch for the sender to be dropped.
    InFlight(watch::Sender<()>),
    /// Committed; a duplicate until this instant.
    Seen(Instant),
}

/// The in-memory store.
pub struct MemoryStore {
    ttl: Duration,
    entries: Mutex<HashMap<DedupKey, Entry>>,
}

impl MemoryStore {
    /// A store remembering ids for `ttl`, with a purge task that ends when the store is dropped.
    pub fn start(ttl: Duration) -> Arc<Self> {
        let store = Arc::new(Self { ttl, entries: Mutex::new(HashMap::new()) });
        tokio::spawn(purge_periodically(Arc::downgrade(&store)));
        store
    }

    /// Ids currently remembered or in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DedupKey, Entry>> {
        // A poisoned map only means a panic elsewhere mid-update; its entries are still coherent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn purge_expired(&self) {
        let now = Instant::now();
        self.lock().retain(|_, e| !matches!(e, Entry::Seen(until) if *until <= now));
    }

    /// One claim attempt: the outcome, or a receiver to wait on while the id is in flight.
    fn try_claim(&self, key: &DedupKey) -> Result<Claim, watch::Receiver<()>> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(Entry::Seen(until)) if *until > Instant::now() => Ok(Claim::Duplicate),
            Some(Entry::InFlight(tx)) => Err(tx.subscribe()),
            _ => {
                let (tx, _) = watch::channel(());
                entries.insert(key.clone(), Entry::InFlight(tx));
                Ok(Claim::Claimed)
            }
        }
    }
}

impl DedupStore for MemoryStore {
    fn claim<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<Claim, DedupError>> {
        async move {
            loop {
                match self.try_claim(key) {
                    Ok(claim) => return Ok(claim),
                    // Resolves (with an error) when the holder commits or releases.
                    Err(mut rx) => while rx.changed().await.is_ok() {},
                }
            }
        }
        .boxed()
    }

    fn commit<'a>(&'a self, key: &'a DedupKey) -> BoxFuture<'a, Result<(), DedupError>> {
        let until = Instant::now() + self.ttl;
        self.lock().insert(key.clone(), Entry::Seen(until));
        async { Ok(()) }.boxed()
    }

    fn release(&self, key: &DedupKey) {
        let mut entries = self.lock();
        if matches!(entries.get(key), Some(Entry::InFlight(_))) {
            entries.remove(key);
        }
    }
}

async fn purge_periodically(store: Weak<MemoryStore>) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        interval.tick().await;
        match store.upgrade() {
            Some(store) => store.purge_expired(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> DedupKey {
        DedupKey::new("src", id)
    }

    #[tokio::test]
    async fn committed_ids_are_duplicates_until_the_ttl_passes() {
        tokio::time::pause();
        let store = MemoryStore::start(Duration::from_secs(10));
        assert_eq!(store.claim(&key("a")).await.unwrap(), Claim::Claimed);
        store.commit(&key("a")).await.unwrap();
        assert_eq!(store.claim(&key("a")).await.unwrap(), Claim::Duplicate);
        assert_eq!(store.claim(&key("b")).await.unwrap(), Claim::Claimed);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(store.claim(&key("a")).await.unwrap(), Claim::Claimed);
    }

    #[tokio::test]
    async fn a_released_id_can_be_claimed_again() {
        let store = MemoryStore::start(Duration::from_secs(10));
        assert_eq!(store.claim(&key("a")).await.unwrap(), Claim::Claimed);
        store.release(&key("a"));
        assert_eq!(store.claim(&key("a")).await.unwrap(), Claim::Claimed);
    }

    #[tokio::test]
    async fn a_concurrent_copy_waits_for_the_first_outcome() {
        let store = MemoryStore::start(Duration::from_secs(10));
        assert_eq!(store.claim(&key("a")).await.unwrap(), Claim::Claimed);
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.claim(&key("a")).await.unwrap() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        store.commit(&key("a")).await.unwrap();
        assert_eq!(waiter.await.unwrap(), Claim::Duplicate);
    }

    #[tokio::test]
    async fn a_waiter_takes_over_when_the_first_copy_fails() {
        let store = MemoryStore::start(Duration::from_secs(10));
        assert_eq!(store.claim(&key("a")).await.unwrap(), Claim::Claimed);
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.claim(&key("a")).await.unwrap() })
        };
        tokio::task::yield_now().await;
        store.release(&key("a"));
        assert_eq!(waiter.await.unwrap(), Claim::Claimed);
    }

    #[tokio::test]
    async fn purge_drops_only_expired_entries() {
        tokio::time::pause();
        let store = MemoryStore::start(Duration::from_secs(10));
        store.claim(&key("old")).await.unwrap();
        store.commit(&key("old")).await.unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        store.claim(&key("inflight")).await.unwrap();
        store.purge_expired();
        assert_eq!(store.len(), 1);
    }
}
