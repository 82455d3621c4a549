//! The reference model: the exact database state (nested buckets, keys, values) after each
//! commit, and the operations of a commit.

use std::collections::BTreeMap;
use std::fmt;

/// A bucket: its key/value pairs and its nested buckets. The top level holds only buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BucketState {
    pub kv: BTreeMap<Vec<u8>, Vec<u8>>,
    pub subs: BTreeMap<Vec<u8>, BucketState>,
}

/// The whole database state (the root's `kv` is always empty).
pub type State = BucketState;

/// A path of bucket names from the top.
pub type Path = Vec<Vec<u8>>;

/// One operation of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create the bucket at `path` (its parent must exist) if it does not exist.
    CreateBucket(Path),
    /// Delete the bucket at `path` (it must exist) with everything under it.
    DeleteBucket(Path),
    Put(Path, Vec<u8>, Vec<u8>),
    Delete(Path, Vec<u8>),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |p: &Path| {
            p.iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        };
        match self {
            Op::CreateBucket(b) => write!(f, "create {}", p(b)),
            Op::DeleteBucket(b) => write!(f, "drop {}", p(b)),
            Op::Put(b, k, v) => write!(
                f,
                "put {}:{} ({} bytes)",
                p(b),
                String::from_utf8_lossy(k),
                v.len()
            ),
            Op::Delete(b, k) => write!(f, "del {}:{}", p(b), String::from_utf8_lossy(k)),
        }
    }
}

impl BucketState {
    pub fn at(&self, path: &[Vec<u8>]) -> Option<&BucketState> {
        let mut b = self;
        for n in path {
            b = b.subs.get(n)?;
        }
        Some(b)
    }

    pub fn at_mut(&mut self, path: &[Vec<u8>]) -> Option<&mut BucketState> {
        let mut b = self;
        for n in path {
            b = b.subs.get_mut(n)?;
        }
        Some(b)
    }

    /// Apply one op; ops that the workload generator never produces for the current state
    /// (missing parent, missing bucket) are ignored.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::CreateBucket(p) => {
                if let Some((last, parent)) = p.split_last() {
                    if let Some(b) = self.at_mut(parent) {
                        b.subs.entry(last.clone()).or_default();
                    }
                }
            }
            Op::DeleteBucket(p) => {
                if let Some((last, parent)) = p.split_last() {
                    if let Some(b) = self.at_mut(parent) {
                        b.subs.remove(last);
                    }
                }
            }
            Op::Put(p, k, v) => {
                if let Some(b) = self.at_mut(p) {
                    b.kv.insert(k.clone(), v.clone());
                }
            }
            Op::Delete(p, k) => {
                if let Some(b) = self.at_mut(p) {
                    b.kv.remove(k);
                }
            }
        }
    }

    pub fn apply_all(&mut self, ops: &[Op]) {
        for op in ops {
            self.apply(op);
        }
    }

    /// All bucket paths, parents first.
    pub fn bucket_paths(&self) -> Vec<Path> {
        fn walk(b: &BucketState, prefix: &mut Path, out: &mut Vec<Path>) {
            for (n, sub) in &b.subs {
                prefix.push(n.clone());
                out.push(prefix.clone());
                walk(sub, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    pub fn key_count(&self) -> usize {
        self.kv.len() + self.subs.values().map(|s| s.key_count()).sum::<usize>()
    }

    pub fn byte_size(&self) -> usize {
        self.kv
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + self
                .subs
                .iter()
                .map(|(n, s)| n.len() + s.byte_size())
                .sum::<usize>()
    }

    /// A short description of the first difference between two states (for reports).
    pub fn diff(&self, other: &BucketState) -> String {
        fn go(a: &BucketState, b: &BucketState, path: &str) -> Option<String> {
            for (k, v) in &a.kv {
                match b.kv.get(k) {
                    None => return Some(format!("{path}:{} missing", String::from_utf8_lossy(k))),
                    Some(w) if w != v => {
                        return Some(format!(
                            "{path}:{} differs ({} vs {} bytes)",
                            String::from_utf8_lossy(k),
                            v.len(),
                            w.len()
                        ))
                    }
                    _ => {}
                }
            }
            for k in b.kv.keys() {
                if !a.kv.contains_key(k) {
                    return Some(format!("{path}:{} unexpected", String::from_utf8_lossy(k)));
                }
            }
            for (n, s) in &a.subs {
                let p = format!("{path}/{}", String::from_utf8_lossy(n));
                match b.subs.get(n) {
                    None => return Some(format!("bucket {p} missing")),
                    Some(t) => {
                        if let Some(d) = go(s, t, &p) {
                            return Some(d);
                        }
                    }
                }
            }
            for n in b.subs.keys() {
                if !a.subs.contains_key(n) {
                    return Some(format!(
                        "bucket {path}/{} unexpected",
                        String::from_utf8_lossy(n)
                    ));
                }
            }
            None
        }
        go(self, other, "").unwrap_or_else(|| "equal".into())
    }
}
