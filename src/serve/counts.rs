//! Things at once per key, up to a limit: a reader's requests at work, a
//! client address's open connections. Entering counts one in; dropping
//! what `enter` gave counts it out (a key at zero is forgotten, so the map
//! holds only keys in use).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// The counts per key.
pub struct Counts<K: Hash + Eq + Clone>(Arc<Mutex<HashMap<K, usize>>>);

impl<K: Hash + Eq + Clone> Default for Counts<K> {
    fn default() -> Self {
        Counts(Arc::default())
    }
}

/// One counted in, until it is dropped.
pub struct Entered<K: Hash + Eq + Clone> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    /// Counts one more for `key`, or says how many it holds when that is
    /// `limit` already.
    pub fn enter(&self, key: K, limit: usize) -> Result<Entered<K>, usize> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key.clone()).or_default();
        if *n >= limit {
            return Err(*n);
        }
        *n += 1;
        Ok(Entered {
            counts: self.0.clone(),
            key,
        })
    }
}

impl<K: Hash + Eq + Clone> Drop for Entered<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_holds_up_to_its_limit_and_is_forgotten_at_zero() {
        let counts = super::Counts::default();
        let a = counts.enter("a", 2).unwrap();
        let b = counts.enter("a", 2).unwrap();
        assert_eq!(counts.enter("a", 2).err(), Some(2));
        assert!(counts.enter("b", 2).is_ok());
        drop(a);
        let c = counts.enter("a", 2).unwrap();
        drop((b, c));
        assert!(counts.0.lock().unwrap().is_empty());
    }
}
