//! Per-sampler intern tables. A check's contexts share a handful of names, one host and a few
//! hundred tag strings (and tag sets: the same tags on every metric of one entity), so a
//! context holds `u32` ids into these tables instead of its own copies: that is what keeps a
//! live context within its memory budget (~200 bytes, see BENCHMARKS.md). Entries are
//! reference counted and freed when the last context (or tag set) using them goes, so a
//! check whose tags churn does not grow the tables forever.

use hashbrown::HashTable;

const K0: u64 = 0x9e37_79b9_7f4a_7c15;
const K1: u64 = 0xd6e8_feb8_6659_fd93;

/// The two halves of a 64×64→128-bit product folded together: one multiply spreads every
/// input bit over the whole word, which the table's bucket (low bits) and tag (high bits)
/// both need.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Hashes one field into `h`, 8 bytes per step. The field's length goes into the last step so
/// that ("ab", "c") and ("a", "bc") differ. Not for adversarial input: every lookup confirms a
/// hash match by comparing the text.
#[inline]
pub(crate) fn hash_field(h: u64, b: &[u8]) -> u64 {
    let mut h = h;
    let (words, rest) = b.as_chunks::<8>();
    for w in words {
        h = fold(h ^ u64::from_le_bytes(*w), K0);
    }
    let last = match (rest.is_empty(), words.last()) {
        (true, _) => 0,
        // The last 8 bytes, overlapping the previous word: a fixed-size load instead of a
        // call to memcpy for the remainder.
        (false, Some(_)) => word_at_end(b),
        (false, None) => short_word(b),
    };
    fold(h ^ last, K1 ^ b.len() as u64)
}

/// The last 8 bytes (`b` has at least 8), little-endian.
#[inline(always)]
fn word_at_end(b: &[u8]) -> u64 {
    let (_, end) = b.as_rchunks::<8>();
    u64::from_le_bytes(*end.last().expect("at least 8 bytes"))
}

/// 1 to 7 bytes into a word with at most two loads that between them read every byte (some
/// twice; the caller mixes in the length, so that is no ambiguity).
#[inline(always)]
pub(crate) fn short_word(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        let hi = u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes"));
        u64::from(lo) | u64::from(hi) << 32
    } else {
        u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16
    }
}

/// Byte equality without a call to memcmp: the strings compared here are short (names,
/// hosts, tags), where the call costs more than the comparison.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        // The two loads of `short_word` cover every byte of 1 to 7.
        return n == 0 || short_word(a) == short_word(b);
    }
    let (wa, _) = a.as_chunks::<8>();
    let (wb, _) = b.as_chunks::<8>();
    let wb = &wb[..wa.len()];
    for k in 0..wa.len() {
        if u64::from_ne_bytes(wa[k]) != u64::from_ne_bytes(wb[k]) {
            return false;
        }
    }
    word_at_end(a) == word_at_end(b)
}

pub(crate) const SEED: u64 = 0x243f_6a88_85a3_08d3;

fn hash_str(s: &str) -> u64 {
    hash_field(SEED, s.as_bytes())
}

fn hash_ids(ids: &[u32]) -> u64 {
    ids.iter().fold(SEED ^ ids.len() as u64, |h, &id| {
        fold(h ^ u64::from(id), K0)
    })
}

struct Entry<T: ?Sized> {
    refs: u32,
    value: Box<T>,
}

/// Interned values of one type, ids reused after release.
struct Table<T: ?Sized> {
    index: HashTable<u32>,
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
}

impl<T: ?Sized + PartialEq> Table<T>
where
    Box<T>: Default,
{
    fn new() -> Self {
        Table {
            index: HashTable::new(),
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    fn get(&self, id: u32) -> &T {
        &self.entries[id as usize].value
    }

    /// The id of `v` with one more reference; `make` builds the owned copy on first use.
    fn acquire(
        &mut self,
        v: &T,
        hash: u64,
        rehash: impl Fn(&T) -> u64,
        make: impl FnOnce() -> Box<T>,
    ) -> u32 {
        let entries = &mut self.entries;
        if let Some(&id) = self
            .index
            .find(hash, |&id| *entries[id as usize].value == *v)
        {
            entries[id as usize].refs += 1;
            return id;
        }
        let entry = Entry {
            refs: 1,
            value: make(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                entries[id as usize] = entry;
                id
            }
            None => {
                entries.push(entry);
                u32::try_from(entries.len() - 1).expect("fewer than 2^32 interned values")
            }
        };
        self.index
            .insert_unique(hash, id, |&i| rehash(&entries[i as usize].value));
        id
    }

    /// One more reference to a live entry.
    fn retain(&mut self, id: u32) {
        self.entries[id as usize].refs += 1;
    }

    /// Drops one reference; returns the value's box when it was the last one.
    fn release(&mut self, id: u32, hash: impl Fn(&T) -> u64) -> Option<Box<T>> {
        let e = &mut self.entries[id as usize];
        e.refs -= 1;
        if e.refs > 0 {
            return None;
        }
        let h = hash(&e.value);
        if let Ok(found) = self.index.find_entry(h, |&i| i == id) {
            found.remove();
        }
        self.free.push(id);
        Some(std::mem::take(&mut self.entries[id as usize].value))
    }
}

/// Strings (metric names, hosts, tags) and tag sets (sorted, de-duplicated lists of tag ids).
pub(crate) struct Interner {
    strings: Table<str>,
    tag_sets: Table<[u32]>,
}

impl Interner {
    pub(crate) fn new() -> Self {
        Interner {
            strings: Table::new(),
            tag_sets: Table::new(),
        }
    }

    pub(crate) fn str(&self, id: u32) -> &str {
        self.strings.get(id)
    }

    pub(crate) fn tag_set(&self, id: u32) -> &[u32] {
        self.tag_sets.get(id)
    }

    pub(crate) fn acquire_str(&mut self, s: &str) -> u32 {
        self.strings.acquire(s, hash_str(s), hash_str, || s.into())
    }

    /// One more reference to a live string (a pending series outliving its context).
    pub(crate) fn retain_str(&mut self, id: u32) {
        self.strings.retain(id);
    }

    /// One more reference to a live tag set.
    pub(crate) fn retain_tag_set(&mut self, id: u32) {
        self.tag_sets.retain(id);
    }

    pub(crate) fn release_str(&mut self, id: u32) {
        self.strings.release(id, hash_str);
    }

    /// Takes over one reference to each of `ids` (already acquired by the caller): released
    /// at once if the set exists already, else held by the new set.
    pub(crate) fn acquire_tag_set(&mut self, ids: &[u32]) -> u32 {
        let mut created = false;
        let id = self.tag_sets.acquire(ids, hash_ids(ids), hash_ids, || {
            created = true;
            ids.into()
        });
        if !created {
            for &t in ids {
                self.release_str(t);
            }
        }
        id
    }

    pub(crate) fn release_tag_set(&mut self, id: u32) {
        if let Some(ids) = self.tag_sets.release(id, hash_ids) {
            for &t in ids.iter() {
                self.release_str(t);
            }
        }
    }

    /// Live interned strings and tag sets (for tests of the reference counting).
    #[cfg(test)]
    fn live(&self) -> (usize, usize) {
        (self.strings.index.len(), self.tag_sets.index.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_shared_and_freed_with_their_last_reference() {
        let mut i = Interner::new();
        let host = i.acquire_str("env:prod");
        let set = |i: &mut Interner| {
            let ids = [i.acquire_str("env:prod"), i.acquire_str("queue:q1")];
            i.acquire_tag_set(&ids)
        };
        let s1 = set(&mut i);
        let s2 = set(&mut i);
        assert_eq!(s1, s2);
        assert_eq!(i.live(), (2, 1));
        i.release_tag_set(s1);
        assert_eq!(i.live(), (2, 1));
        i.release_tag_set(s2);
        assert_eq!(i.live(), (1, 0), "env:prod is still held once");
        assert_eq!(i.str(host), "env:prod");
        i.release_str(host);
        assert_eq!(i.live(), (0, 0));
        let again = i.acquire_str("host-2");
        assert!(again <= 1, "freed ids are reused");
    }

    #[test]
    fn field_boundaries_change_the_hash() {
        let ab_c = hash_field(hash_field(SEED, b"ab"), b"c");
        let a_bc = hash_field(hash_field(SEED, b"a"), b"bc");
        assert_ne!(ab_c, a_bc);
        assert_ne!(hash_field(SEED, b""), hash_field(SEED, b"\0"));
    }

    #[test]
    fn same_is_string_equality() {
        let words = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "abd",
            "acc",
            "abcd",
            "abce",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "abcdefghj",
            "xbcdefghi",
            "env:production",
            "env:productiom",
            "service:orders-api",
            "service:orders-apj",
        ];
        for a in words {
            for b in words {
                assert_eq!(same(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }
}
