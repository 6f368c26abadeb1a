//! Tables keyed by fingerprint (a URL's, a name's), for what a run must remember
//! of every item of a list of millions: the URLs seen, each base name's count,
//! the names held. A hash table spends two to four times its entries' bytes
//! (empty buckets, and the old table beside the new one while it grows); here
//! most entries sit in two sorted arrays (keys, values) at their own bytes,
//! and only the newest in a small hash table, merged into the arrays in place
//! once it holds a sixteenth as many.
//!
//! Fingerprints are hashes, spread evenly over their range, so a key's top bits
//! say where it lies in the sorted keys: an index of where each top-bits prefix
//! starts (a 32-bit position per eight keys, half a byte per entry) narrows a
//! search to some eight keys, one or two cache lines. Halving over all of a
//! million keys instead missed the cache a dozen times a lookup, some 8% of a
//! million-URL `grab get`'s CPU.
//!
//! Hand-written: the crates that store sorted keys compactly are read-only once
//! built (`fst`) or keep a tree per entry; this is about a hundred lines.

use std::collections::HashMap;
use std::hash::Hash;

/// The fewest entries the recent table holds before a merge, so that a short
/// list never pays for merging at all.
const SMALLEST_RECENT: usize = 4096;

/// Merge once the recent table holds this fraction of the sorted entries:
/// each merge moves every entry, so a sixteenth keeps the cost at some sixteen
/// moves per insert, and the recent table at a few bytes per entry.
const RECENT_FRACTION: usize = 16;

/// Sorted keys per prefix of the index, about: fewer would cost the index more
/// bytes, more would cost the search more cache lines.
const KEYS_PER_PREFIX: usize = 8;

/// A key evenly spread over its range, as a hash is.
pub trait Fingerprint: Copy + Ord + Hash + Default {
    /// The key's top `bits` bits (1 to 32).
    fn top(self, bits: u32) -> usize;
}

impl Fingerprint for u128 {
    fn top(self, bits: u32) -> usize {
        (self >> (128 - bits)) as usize
    }
}

impl Fingerprint for u64 {
    fn top(self, bits: u32) -> usize {
        (self >> (64 - bits)) as usize
    }
}

/// For the tests' small keys.
impl Fingerprint for u16 {
    fn top(self, bits: u32) -> usize {
        usize::from(self) >> (16 - bits.min(16))
    }
}

/// A map from fingerprint to a small value, at about the bytes of both.
#[derive(Debug, Clone)]
pub struct FingerprintMap<K, V> {
    /// The newest changes; `None` is a removal not merged yet.
    recent: HashMap<K, Option<V>>,
    /// Sorted, with `values` alongside: two arrays, so that a `u128` key and a
    /// `u64` value take 24 bytes, not a padded pair's 32.
    keys: Vec<K>,
    values: Vec<V>,
    /// `starts[prefix]` is the first position in `keys` whose top
    /// `prefix_bits` bits are `prefix` or more; the last entry is `keys.len()`.
    /// Empty (a search over all of `keys`) while the keys are few.
    starts: Vec<u32>,
    prefix_bits: u32,
}

/// A set of fingerprints.
pub type FingerprintSet<K> = FingerprintMap<K, ()>;

impl<K, V> Default for FingerprintMap<K, V> {
    fn default() -> Self {
        FingerprintMap {
            recent: HashMap::new(),
            keys: Vec::new(),
            values: Vec::new(),
            starts: Vec::new(),
            prefix_bits: 0,
        }
    }
}

impl<K: Fingerprint, V: Copy + Default> FingerprintMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &K) -> Option<V> {
        match self.recent.get(key) {
            Some(entry) => *entry,
            None => self.position(*key).map(|index| self.values[index]),
        }
    }

    pub fn contains(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`. It does not say what the key held before: that
    /// would take a lookup (a cache miss or two in a large table), which most
    /// callers have made already or do not need.
    pub fn set(&mut self, key: K, value: V) {
        self.recent.insert(key, Some(value));
        self.settle();
    }

    /// Removes `key`, returning what it held.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let previous = self.get(key);
        if previous.is_some() {
            self.recent.insert(*key, None);
            self.settle();
        }
        previous
    }

    /// Where `key` is in the sorted keys.
    fn position(&self, key: K) -> Option<usize> {
        let (start, end) = if self.starts.is_empty() {
            (0, self.keys.len())
        } else {
            let prefix = key.top(self.prefix_bits);
            (
                self.starts[prefix] as usize,
                self.starts[prefix + 1] as usize,
            )
        };
        self.keys[start..end]
            .binary_search(&key)
            .ok()
            .map(|offset| start + offset)
    }

    /// Makes `starts` anew for the keys as they are now.
    fn index(&mut self) {
        let prefixes = self.keys.len() / KEYS_PER_PREFIX;
        self.starts.clear();
        // Positions are 32-bit: past 4 billion keys, no index (still correct).
        if prefixes < 2 || u32::try_from(self.keys.len()).is_err() {
            self.starts.shrink_to_fit();
            return;
        }
        self.prefix_bits = prefixes.ilog2().min(32);
        let count = 1usize << self.prefix_bits;
        self.starts.reserve_exact(count + 1);
        let mut position = 0;
        for prefix in 0..count {
            while position < self.keys.len() && self.keys[position].top(self.prefix_bits) < prefix {
                position += 1;
            }
            self.starts.push(position as u32);
        }
        self.starts.push(self.keys.len() as u32);
    }

    fn settle(&mut self) {
        if self.recent.len() > SMALLEST_RECENT.max(self.keys.len() / RECENT_FRACTION) {
            self.merge();
        }
    }

    /// Moves the recent changes into the sorted arrays, from the back, so the
    /// arrays grow by the recent table's length and never exist twice.
    fn merge(&mut self) {
        let mut recent: Vec<(K, Option<V>)> = self.recent.drain().collect();
        self.recent.shrink_to(SMALLEST_RECENT);
        recent.sort_unstable_by_key(|(key, _)| *key);
        let old = self.keys.len();
        let end = old + recent.len();
        // Exact: a doubling growth would hold up to twice the entries' bytes.
        self.keys.reserve_exact(recent.len());
        self.values.reserve_exact(recent.len());
        self.keys.resize(end, K::default());
        self.values.resize(end, V::default());
        // Reads at `old - 1` and `new - 1` go down; writes at `write - 1` stay
        // at or above `old + new - 1`, so an unread entry is never written over.
        let (mut old, mut new, mut write) = (old, recent.len(), end);
        while new > 0 {
            let (key, entry) = recent[new - 1];
            if old > 0 && self.keys[old - 1] > key {
                write -= 1;
                self.keys[write] = self.keys[old - 1];
                self.values[write] = self.values[old - 1];
                old -= 1;
                continue;
            }
            // The recent entry replaces (or removes) the sorted one.
            if old > 0 && self.keys[old - 1] == key {
                old -= 1;
            }
            new -= 1;
            if let Some(value) = entry {
                write -= 1;
                self.keys[write] = key;
                self.values[write] = value;
            }
        }
        // Removals leave a gap between the untouched start and the merged end.
        if write > old {
            self.keys.copy_within(write..end, old);
            self.values.copy_within(write..end, old);
            let length = old + (end - write);
            self.keys.truncate(length);
            self.values.truncate(length);
            self.keys.shrink_to_fit();
            self.values.shrink_to_fit();
        }
        self.index();
    }
}

impl<K: Fingerprint> FingerprintMap<K, ()> {
    /// Adds `key`; false when it was there already.
    pub fn add(&mut self, key: K) -> bool {
        // A repeat changes nothing, so it takes no room in the recent table.
        let new = !self.contains(&key);
        if new {
            self.set(key, ());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Change {
        Insert(u16, u32),
        Remove(u16),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            3 => (any::<u16>(), any::<u32>()).prop_map(|(key, value)| Change::Insert(key, value)),
            1 => any::<u16>().prop_map(Change::Remove),
        ]
    }

    proptest! {
        // Enough changes to merge many times over (the recent table merges
        // past 4,096), checked against a hash map after every one.
        #![proptest_config(ProptestConfig::with_cases(8))]
        #[test]
        fn answers_as_a_hash_map_does(changes in prop::collection::vec(change(), 20_000..40_000)) {
            let mut map = FingerprintMap::<u16, u32>::new();
            let mut model = HashMap::new();
            for change in changes {
                match change {
                    Change::Insert(key, value) => {
                        prop_assert_eq!(map.get(&key), model.get(&key).copied());
                        map.set(key, value);
                        model.insert(key, value);
                    }
                    Change::Remove(key) => {
                        prop_assert_eq!(map.remove(&key), model.remove(&key));
                    }
                }
            }
            for key in 0..=u16::MAX {
                prop_assert_eq!(map.get(&key), model.get(&key).copied());
            }
            prop_assert_eq!(map.keys.len(), map.values.len());
            prop_assert!(map.keys.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }

    /// 64-bit keys at both ends of their range, where a prefix's start is
    /// easiest to get wrong.
    #[test]
    fn sixty_four_bit_keys_are_found_at_both_ends() {
        let mut map = FingerprintMap::<u64, u64>::new();
        let keys: Vec<u64> = (0..50_000u64)
            .map(|number| number.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .chain([0, 1, u64::MAX, u64::MAX - 1])
            .collect();
        for (value, key) in keys.iter().enumerate() {
            map.set(*key, value as u64);
        }
        map.merge();
        assert!(!map.starts.is_empty());
        for (value, key) in keys.iter().enumerate() {
            // Key 0 is also the first of the multiples, replaced by the later insert.
            let expected = if *key == 0 { 50_000 } else { value as u64 };
            assert_eq!(map.get(key), Some(expected), "{key:#x}");
        }
        assert_eq!(map.get(&2), None);
        assert_eq!(map.get(&(u64::MAX - 2)), None);
    }

    #[test]
    fn a_million_fingerprints_take_their_own_bytes() {
        let mut set = FingerprintSet::<u128>::new();
        for number in 0..1_000_000u128 {
            // Spread over the key space, as hashes are.
            let key = number.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
            assert!(set.add(key));
        }
        assert!(!set.add(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
        // Every key found through the prefix index, and no other.
        for number in 0..1_000_000u128 {
            let key = number.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
            assert!(set.contains(&key));
            assert!(!set.contains(&(key ^ 1)));
        }
        assert!(!set.contains(&1));
        assert!(!set.contains(&u128::MAX));
        // The index: a position per eight keys or fewer.
        assert!(!set.starts.is_empty());
        assert!(set.starts.len() <= set.keys.len() / KEYS_PER_PREFIX + 1);
        // Sorted arrays of about their entries (grown exactly, not doubled),
        // and a recent table of at most a sixteenth of them.
        assert!(set.keys.capacity() <= set.keys.len() + set.keys.len() / 64);
        assert!(set.recent.len() <= 1_000_000 / RECENT_FRACTION);
        assert_eq!(set.keys.len() + set.recent.len(), 1_000_000);
    }
}
