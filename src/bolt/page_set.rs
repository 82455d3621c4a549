//! A set of page ids as a bitmap: one bit per page of the file, the only allocation of a walk
//! sized from the file.

/// A set of page ids below a fixed limit.
#[derive(Clone, Debug)]
pub struct PageSet {
    words: Vec<u64>,
    len: u64,
}

impl PageSet {
    /// A set for ids `0..len`. `len` must already be bounded by the file's page count.
    pub fn new(len: u64) -> PageSet {
        let words = usize::try_from(len.div_ceil(64)).unwrap_or(0);
        PageSet {
            words: vec![0; words],
            len,
        }
    }
    /// True when `id` is in the set (ids past its length never are).
    pub fn contains(&self, id: u64) -> bool {
        if id >= self.len {
            return false;
        }
        let w = usize::try_from(id / 64).unwrap_or(usize::MAX);
        self.words.get(w).is_some_and(|x| x & (1 << (id % 64)) != 0)
    }
    /// Insert; returns false when it was already present (or out of range).
    pub fn insert(&mut self, id: u64) -> bool {
        if id >= self.len {
            return false;
        }
        let w = usize::try_from(id / 64).unwrap_or(usize::MAX);
        match self.words.get_mut(w) {
            Some(x) => {
                let bit = 1u64 << (id % 64);
                let was = *x & bit != 0;
                *x |= bit;
                !was
            }
            None => false,
        }
    }
}
