//! The run's errored call ids: the one structure that grows with the
//! window (every id an error carries, from a day before the window on).
//!
//! Each id is held as its 128-bit XXH3 fingerprint with the latest time an
//! error carrying it was logged, in one sorted array of 24-byte entries,
//! found through a table of where each run of equal top bits starts. A
//! hash map of the same entries (`u128` keys pad to 32 bytes, plus a
//! control byte, at most 7/8 full) held 69 MB for the 1.5 million ids of
//! a 20-million-call window, and briefly half as much again while it grew:
//! this holds 40 MB and never copies itself (the array grows in place).
//! Two distinct ids share a fingerprint with odds of about 2^-128.

use crate::rollup::accumulate::fingerprint;

/// How long before its call an error may be logged and still make the
/// call errored (docs/CONTRACT.md §2): 24 hours, in µs.
pub const ERROR_LEAD_MICROS: i64 = 24 * 3600 * 1_000_000;

/// One errored id: its fingerprint's two halves (8-byte aligned, so an
/// entry is 24 bytes, not 32) and the latest time logged (Unix µs).
#[derive(Clone, Copy)]
struct Entry {
    high: u64,
    low: u64,
    last_logged: i64,
}

/// Fingerprints with the latest time an error carrying the id was logged.
#[derive(Default)]
pub struct ErrorTimes {
    /// Sorted by fingerprint, one entry per fingerprint.
    entries: Vec<Entry>,
    /// `starts[b]..starts[b + 1]` are the entries whose top `bits` bits
    /// are `b`: about one entry each, so a lookup reads one or two.
    starts: Vec<u32>,
    bits: u32,
    /// One bit per slot of the fingerprints' low halves, set for each
    /// entry: about 8 slots an entry (1 byte), so it stays in cache where
    /// `entries` does not, and most calls (never errored) are answered by
    /// it alone, with no read of `starts` or `entries` (the two cache
    /// misses a lookup cost, 6 % of the engine's CPU on a 5 M-call run).
    seen: Vec<u64>,
}

/// Collects the ids as they stream in; `finish` sorts and indexes them.
#[derive(Default)]
pub struct ErrorTimesBuilder {
    entries: Vec<Entry>,
    /// Entries held after the last `compact`: when they have doubled,
    /// repeats are folded again (an id carried by many error rows).
    compacted: usize,
}

impl ErrorTimesBuilder {
    pub fn insert(&mut self, fingerprint: u128, last_logged: i64) {
        self.entries.push(Entry {
            high: (fingerprint >> 64) as u64,
            low: fingerprint as u64,
            last_logged,
        });
        if self.entries.len() >= (2 * self.compacted).max(1 << 16) {
            self.compact();
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// Takes another builder's ids (another stream's).
    pub fn absorb(&mut self, other: ErrorTimesBuilder) {
        if other.entries.len() > self.entries.len() {
            let mine = std::mem::replace(self, other);
            self.entries.extend(mine.entries);
        } else {
            self.entries.extend(other.entries);
        }
        self.compact();
    }

    /// One entry per fingerprint, its latest time, sorted.
    fn compact(&mut self) {
        let entries = &mut self.entries;
        // The latest time first within a fingerprint, so dedup keeps it.
        entries.sort_unstable_by(|a, b| {
            (a.high, a.low)
                .cmp(&(b.high, b.low))
                .then(b.last_logged.cmp(&a.last_logged))
        });
        entries.dedup_by(|later, kept| (later.high, later.low) == (kept.high, kept.low));
        self.compacted = entries.len();
    }

    pub fn finish(mut self) -> ErrorTimes {
        self.compact();
        let mut entries = self.entries;
        entries.shrink_to_fit();
        // About one entry per bucket: 2^bits <= len.
        let bits = usize::BITS - entries.len().max(1).leading_zeros() - 1;
        let buckets = 1usize << bits;
        let mut starts = vec![0u32; buckets + 1];
        for entry in &entries {
            starts[bucket(entry.high, bits) + 1] += 1;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        let slots = (entries.len() * 8).next_power_of_two().max(64);
        let mut seen = vec![0u64; slots / 64];
        for entry in &entries {
            let slot = seen_slot(entry.low, slots);
            seen[slot / 64] |= 1 << (slot % 64);
        }
        ErrorTimes {
            entries,
            starts,
            bits,
            seen,
        }
    }
}

/// The top `bits` bits of a fingerprint's high half.
fn bucket(high: u64, bits: u32) -> usize {
    high.checked_shr(64 - bits).unwrap_or(0) as usize
}

/// The slot of `seen` a fingerprint's low half marks (`slots` a power of 2).
fn seen_slot(low: u64, slots: usize) -> usize {
    low as usize & (slots - 1)
}

impl ErrorTimes {
    /// Whether a call with this id created at `at` (Unix µs) is errored:
    /// an error carrying its id was logged no earlier than 24 hours before
    /// it (docs/CONTRACT.md §2).
    pub fn marks(&self, call_id: &[u8], at: i64) -> bool {
        self.marks_fingerprint(fingerprint(call_id), at)
    }

    /// `marks` for an id's fingerprint.
    pub fn marks_fingerprint(&self, fingerprint: u128, at: i64) -> bool {
        self.get(fingerprint)
            .is_some_and(|logged| logged >= at.saturating_sub(ERROR_LEAD_MICROS))
    }

    /// Starts loading the word of `seen` a fingerprint's look-up reads:
    /// the look-up is a cache miss per call (10 % of a one-pass read's
    /// CPU), and the decoder has the rest of the row to decode meanwhile.
    pub fn prefetch(&self, fingerprint: u128) {
        if self.seen.is_empty() {
            return;
        }
        let slot = seen_slot(fingerprint as u64, self.seen.len() * 64);
        let word: *const u64 = &self.seen[slot / 64];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch only hints the cache; `word` is a valid
        // reference, and SSE is part of every x86_64.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(word.cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = word;
    }

    /// The latest time an error carrying this fingerprint was logged.
    pub fn get(&self, fingerprint: u128) -> Option<i64> {
        if self.entries.is_empty() {
            return None;
        }
        let (high, low) = ((fingerprint >> 64) as u64, fingerprint as u64);
        let slot = seen_slot(low, self.seen.len() * 64);
        if self.seen[slot / 64] & (1 << (slot % 64)) == 0 {
            return None;
        }
        let b = bucket(high, self.bits);
        let (from, to) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        self.entries[from..to]
            .iter()
            .find(|e| e.high == high && e.low == low)
            .map(|e| e.last_logged)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(u128, i64)> for ErrorTimes {
    fn from_iter<I: IntoIterator<Item = (u128, i64)>>(ids: I) -> Self {
        let mut builder = ErrorTimesBuilder::default();
        for (fingerprint, at) in ids {
            builder.insert(fingerprint, at);
        }
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn an_empty_set_finds_nothing() {
        let set = ErrorTimes::default();
        assert_eq!(set.get(fingerprint(b"CA01")), None);
        let built = ErrorTimesBuilder::default().finish();
        assert!(built.is_empty());
        assert_eq!(built.get(0), None);
    }

    #[test]
    fn a_repeated_id_keeps_its_latest_time() {
        let id = fingerprint(b"CA01");
        let set: ErrorTimes = [(id, 5), (id, 9), (id, 7)].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(set.get(id), Some(9));
    }

    /// One id carried by many error rows (the one-pass read collects a
    /// row per error) is folded as they come, so the builder holds about
    /// the distinct ids, not the rows; streams' builders merge.
    #[test]
    fn many_rows_of_few_ids_are_folded_as_they_come_and_streams_merge() {
        let ids: Vec<u128> = (0..100u32).map(|i| fingerprint(&i.to_be_bytes())).collect();
        let mut streams = [ErrorTimesBuilder::default(), ErrorTimesBuilder::default()];
        for row in 0..400_000i64 {
            let id = ids[(row % 100) as usize];
            streams[(row % 2) as usize].insert(id, row);
        }
        for stream in &streams {
            assert!(stream.entries.len() < 1 << 17, "{}", stream.entries.len());
        }
        let [mut first, second] = streams;
        first.absorb(second);
        let set = first.finish();
        assert_eq!(set.len(), 100);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(set.get(*id), Some(399_900 + i as i64));
        }
    }

    #[test]
    fn extreme_fingerprints_are_found() {
        let ids = [
            0u128,
            1,
            u128::MAX,
            u128::MAX - 1,
            1u128 << 64,
            (1u128 << 64) - 1,
        ];
        let set: ErrorTimes = ids.iter().map(|&id| (id, id as i64)).collect();
        for id in ids {
            assert_eq!(set.get(id), Some(id as i64), "{id:#x}");
        }
        assert_eq!(set.get(2), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Equals a hash map of the same inserts (latest time wins), for
        /// ids inside and outside the set, fingerprints and raw values.
        #[test]
        fn lookups_equal_a_hash_map(
            inserts in proptest::collection::vec((0u16..400, any::<i64>()), 0..600),
            raw in proptest::collection::vec(any::<u128>(), 0..50),
            probes in proptest::collection::vec(0u16..500, 0..100),
        ) {
            let mut expected: HashMap<u128, i64> = HashMap::new();
            let mut all = Vec::new();
            for (id, at) in &inserts {
                let f = fingerprint(&id.to_be_bytes());
                all.push((f, *at));
                let slot = expected.entry(f).or_insert(*at);
                *slot = (*slot).max(*at);
            }
            for (i, f) in raw.iter().enumerate() {
                all.push((*f, i as i64));
                let slot = expected.entry(*f).or_insert(i as i64);
                *slot = (*slot).max(i as i64);
            }
            let set: ErrorTimes = all.into_iter().collect();
            prop_assert_eq!(set.len(), expected.len());
            for (f, at) in &expected {
                prop_assert_eq!(set.get(*f), Some(*at));
            }
            for id in probes {
                let f = fingerprint(&id.to_be_bytes());
                prop_assert_eq!(set.get(f), expected.get(&f).copied());
            }
        }
    }
}
