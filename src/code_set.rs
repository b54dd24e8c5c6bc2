//! Which room codes are stored rooms: one bit per possible code (every
//! four- and five-letter code, 1.5 MB however many rooms there are), so
//! the registry knows whether a code is a room, and how many are in use,
//! without holding the rooms themselves in memory.

use crate::model::RoomCode;

/// How many codes of `len` letters there are.
const fn codes_of(len: usize) -> usize {
    26usize.pow(len as u32)
}

/// Every four-letter code's bit comes first, then every five-letter one's.
const BITS: usize = codes_of(RoomCode::SHORT) + codes_of(RoomCode::LONG);

pub struct CodeSet {
    words: Vec<u64>,
    len: usize,
}

impl Default for CodeSet {
    fn default() -> CodeSet {
        // Zeroed pages are not resident until a code in them is set.
        CodeSet {
            words: vec![0; BITS.div_ceil(64)],
            len: 0,
        }
    }
}

impl CodeSet {
    /// Adds `code`; false if it was there already.
    pub fn insert(&mut self, code: &RoomCode) -> bool {
        let (word, bit) = place(code);
        let was = self.words[word] & bit != 0;
        self.words[word] |= bit;
        self.len += usize::from(!was);
        !was
    }

    /// Takes `code` out; false if it was not there.
    pub fn remove(&mut self, code: &RoomCode) -> bool {
        let (word, bit) = place(code);
        let was = self.words[word] & bit != 0;
        self.words[word] &= !bit;
        self.len -= usize::from(was);
        was
    }

    pub fn contains(&self, code: &RoomCode) -> bool {
        let (word, bit) = place(code);
        self.words[word] & bit != 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for CodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CodeSet({} codes)", self.len)
    }
}

/// Where `code`'s bit is: its letters as a number in base 26, after every
/// shorter code's. A [`RoomCode`] is four or five capital letters.
fn place(code: &RoomCode) -> (usize, u64) {
    let letters = code.as_str().as_bytes();
    let number = letters
        .iter()
        .fold(0usize, |n, b| n * 26 + usize::from(b - b'A'));
    let index = match letters.len() {
        RoomCode::SHORT => number,
        _ => codes_of(RoomCode::SHORT) + number,
    };
    (index / 64, 1 << (index % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: &str) -> RoomCode {
        RoomCode::parse(c).unwrap()
    }

    #[test]
    fn every_code_has_its_own_bit() {
        let mut set = CodeSet::default();
        for c in ["AAAA", "ZZZZ", "AAAAA", "ZZZZZ", "ABCD", "BCDA"] {
            assert!(!set.contains(&code(c)));
            assert!(set.insert(&code(c)), "{c} new");
            assert!(set.contains(&code(c)));
        }
        assert!(!set.insert(&code("abcd")), "case does not matter");
        assert_eq!(set.len(), 6);
        assert!(!set.contains(&code("AAAB")));
        assert!(
            !set.contains(&code("AAAAB")),
            "five letters apart from four"
        );
        assert!(set.remove(&code("ZZZZZ")));
        assert!(!set.remove(&code("ZZZZZ")));
        assert!(!set.contains(&code("ZZZZZ")));
        assert!(set.contains(&code("ZZZZ")));
        assert_eq!(set.len(), 5);
    }
}
