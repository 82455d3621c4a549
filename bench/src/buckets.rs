//! The bucket-heavy workloads of issue 15: containerd-like metadata, where every object is a
//! small bucket under its namespace's bucket with a nested `labels` bucket, and many buckets of
//! one key each. This module generates their names, keys and values (the same bytes for every
//! engine, and in `bench/go/bboltbench.go`); the counts are in the report's `sizes.rs`.
//!
//! Engines without nested buckets keep these entries in one table under their bucket path as a
//! `/`-separated key prefix ([`Object::flat_entries`], [`one_key_flat`]), and delete a bucket as
//! the key range of its prefix.

use crate::splitmix;

/// The namespaces' bucket names; object `i` is in namespace `i % NAMESPACES.len()`, so that
/// every commit of consecutive objects touches all of them.
pub const NAMESPACES: [&[u8]; 5] = [
    b"default",
    b"k8s.io",
    b"moby",
    b"buildkit",
    b"services.linuxkit",
];
/// The field keys an object may have; each object has the first 3 to 6 of them.
pub const FIELDS: [&[u8]; 6] = [
    b"createdat",
    b"updatedat",
    b"image",
    b"runtime",
    b"snapshotter",
    b"snapshotkey",
];
/// The name of an object's nested bucket.
pub const LABELS: &[u8] = b"labels";
/// The label keys an object may have; each object has the first 1 to 3 of them.
pub const LABEL_KEYS: [&[u8]; 3] = [
    b"io.kubernetes.pod.name",
    b"io.kubernetes.pod.namespace",
    b"io.kubernetes.container.name",
];
/// The key of every one-key bucket.
pub const ONE_KEY: &[u8] = b"id";
/// The separator of bucket path components in the flat emulation.
pub const SEP: u8 = b'/';

const OBJECT_SEED: u64 = 0x0B1E_C700_0000_0000;
const ONE_KEY_SEED: u64 = 0x0E4E_0000_0000_0000;

/// One object of the metadata workload: the bucket `ns / id` with its fields and the bucket
/// `ns / id / labels` with its labels.
pub struct Object {
    pub ns: &'static [u8],
    /// 32 lowercase hex digits, random like a container's id.
    pub id: [u8; 32],
    pub fields: Vec<(&'static [u8], Vec<u8>)>,
    pub labels: Vec<(&'static [u8], Vec<u8>)>,
}

/// Object `i` of the metadata workload.
pub fn object(i: u64) -> Object {
    let h = splitmix(i ^ OBJECT_SEED);
    let mut id = [0u8; 32];
    hex(&mut id[..16], splitmix(h));
    hex(&mut id[16..], splitmix(h.wrapping_add(1)));
    let nf = 3 + splitmix(h.wrapping_add(2)) % 4;
    let nl = 1 + splitmix(h.wrapping_add(3)) % 3;
    Object {
        ns: NAMESPACES[(i % NAMESPACES.len() as u64) as usize],
        id,
        fields: (0..nf)
            .map(|f| (FIELDS[f as usize], small_value(h.wrapping_add(16 + f))))
            .collect(),
        labels: (0..nl)
            .map(|l| (LABEL_KEYS[l as usize], small_value(h.wrapping_add(32 + l))))
            .collect(),
    }
}

impl Object {
    /// The key prefix of the object's bucket in the flat emulation: `ns/id/`.
    pub fn prefix(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.ns.len() + self.id.len() + 2);
        p.extend_from_slice(self.ns);
        p.push(SEP);
        p.extend_from_slice(&self.id);
        p.push(SEP);
        p
    }

    /// The object's entries in the flat emulation: `ns/id/field` and `ns/id/labels/key`.
    pub fn flat_entries(&self) -> Vec<(Vec<u8>, &[u8])> {
        let prefix = self.prefix();
        let mut v = Vec::with_capacity(self.fields.len() + self.labels.len());
        for (k, val) in &self.fields {
            v.push(([prefix.as_slice(), k].concat(), val.as_slice()));
        }
        for (k, val) in &self.labels {
            v.push((
                [prefix.as_slice(), LABELS, &[SEP], k].concat(),
                val.as_slice(),
            ));
        }
        v
    }
}

/// The end (exclusive) of the key range that starts with `prefix`, which ends in [`SEP`].
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// 8 to 40 pseudo-random bytes derived from `seed`.
pub fn small_value(seed: u64) -> Vec<u8> {
    let mut s = splitmix(seed);
    let len = 8 + (s % 33) as usize;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        s = splitmix(s);
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// `v` as 16 lowercase hex digits into `out`.
fn hex(out: &mut [u8], v: u64) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = b"0123456789abcdef"[((v >> (60 - 4 * j)) & 0xF) as usize];
    }
}

/// The name of one-key bucket `i`: 16 lowercase hex digits.
pub fn one_key_bucket(i: u64) -> [u8; 16] {
    let mut name = [0u8; 16];
    hex(&mut name, splitmix(i ^ ONE_KEY_SEED));
    name
}

/// The 4-byte value of one-key bucket `i`.
pub fn one_key_value(i: u64) -> [u8; 4] {
    (i as u32).to_le_bytes()
}

/// The key of one-key bucket `i` in the flat emulation: `name/id`.
pub fn one_key_flat(i: u64) -> Vec<u8> {
    [one_key_bucket(i).as_slice(), &[SEP], ONE_KEY].concat()
}

/// What a walk of a whole database found: the buckets (not counted by engines without them),
/// the keys and the bytes of their values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub buckets: u64,
    pub keys: u64,
    pub value_bytes: u64,
}

impl Walk {
    /// Count one key with `value`.
    pub fn key(&mut self, value: &[u8]) {
        self.keys += 1;
        self.value_bytes += value.len() as u64;
    }
}

/// The keys and value bytes a walk finds when exactly the objects `live` are stored (buckets
/// are left at 0).
pub fn objects_walk(live: impl IntoIterator<Item = u64>) -> Walk {
    let mut w = Walk::default();
    for i in live {
        let o = object(i);
        for (_, v) in o.fields.iter().chain(&o.labels) {
            w.key(v);
        }
    }
    w
}

/// The keys and value bytes a walk finds when one-key buckets `0..n` are stored.
pub fn one_key_walk(n: u64) -> Walk {
    Walk {
        buckets: 0,
        keys: n,
        value_bytes: 4 * n,
    }
}

/// FNV-1a over the flat entries (key, value, with their lengths) of objects `0..n`, then over
/// the flat keys and values of one-key buckets `0..n`: the check that `bboltbench.go digest`
/// generates the same bytes.
pub fn digest(n: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: &[u8]| {
        for x in (b.len() as u32).to_le_bytes().iter().chain(b) {
            h = (h ^ u64::from(*x)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    };
    for i in 0..n {
        let o = object(i);
        eat(o.ns);
        for (k, v) in o.flat_entries() {
            eat(&k);
            eat(v);
        }
    }
    for i in 0..n {
        eat(&one_key_flat(i));
        eat(&one_key_value(i));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_have_distinct_ids_and_the_promised_shape() {
        let mut ids: Vec<_> = (0..10_000).map(|i| object(i).id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10_000);
        let mut seen_fields = [false; 7];
        let mut seen_labels = [false; 4];
        for i in 0..1000 {
            let o = object(i);
            assert!((3..=6).contains(&o.fields.len()));
            assert!((1..=3).contains(&o.labels.len()));
            seen_fields[o.fields.len()] = true;
            seen_labels[o.labels.len()] = true;
            for (_, v) in o.fields.iter().chain(&o.labels) {
                assert!((8..=40).contains(&v.len()));
            }
            for (k, _) in o.flat_entries() {
                let p = o.prefix();
                assert!(k.starts_with(&p) && k.as_slice() < prefix_end(&p).as_slice());
            }
        }
        assert_eq!(seen_fields, [false, false, false, true, true, true, true]);
        assert_eq!(seen_labels, [false, true, true, true]);
    }

    #[test]
    fn generated_bytes_match_the_go_program() {
        // `go run bench/go/bboltbench.go digest 10000 -` prints the same digest of the same
        // workloads; if the generator changes, change both and pin the new value.
        assert_eq!(format!("{:016x}", digest(10_000)), GO_DIGEST);
    }

    const GO_DIGEST: &str = "6cdf1aa4eafd7cad";

    #[test]
    fn one_key_buckets_are_distinct() {
        let mut names: Vec<_> = (0..10_000).map(one_key_bucket).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10_000);
        assert_eq!(one_key_flat(0).len(), 19);
    }
}
