//! Shared helpers of the bbolt tests: corpus access, a content model, the corpus digests and
//! the manifest comparison.
#![allow(dead_code)]

use std::path::PathBuf;

use deadbolt::bolt::{BoltFile, Event, Walker};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const HEALTHY: &[&str] = &[
    "a_empty",
    "b_one_bucket",
    "c_nested",
    "d_200k_keys",
    "e_large_values",
    "f_freelist_churn",
    "g_no_freelist_sync",
    "h_pagesize_16k",
    "i_sequences",
    "j_docker_volumes",
    "k_binary_edge",
];

pub const CORRUPT: &[&str] = &[
    "corrupt_01_branch_to_freelist",
    "corrupt_02_leaf_flags_garbage",
    "corrupt_03_branch_past_eof",
    "corrupt_04_branch_cycle",
    "corrupt_05_meta_bad_checksum",
    "corrupt_06_both_metas_bad",
];

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/bolt")
}

pub fn db_path(name: &str) -> PathBuf {
    data_dir().join(format!("{name}.db"))
}

pub fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(data_dir().join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn read_db(name: &str) -> Vec<u8> {
    std::fs::read(db_path(name)).unwrap()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

pub fn sha_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

pub fn u64_of(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an exact u64: {v}"))
}

/// A bucket's full content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub name: Vec<u8>,
    pub sequence: u64,
    /// bbolt-side only: header root (0 for inline).
    pub root_pgid: Option<u64>,
    pub kvs: Vec<(Vec<u8>, Vec<u8>)>,
    pub children: Vec<Model>,
}

impl Model {
    pub fn kv_total(&self) -> u64 {
        self.kvs.len() as u64 + self.children.iter().map(|c| c.kv_total()).sum::<u64>()
    }
    pub fn bucket_total(&self) -> u64 {
        self.children.len() as u64 + self.children.iter().map(|c| c.bucket_total()).sum::<u64>()
    }
    pub fn child(&self, name: &[u8]) -> Option<&Model> {
        self.children.iter().find(|c| c.name == name)
    }
    /// Sort pairs and nested buckets by key (entries recovered by salvage arrive late).
    pub fn normalize(&mut self) {
        self.kvs.sort();
        self.children.sort_by(|a, b| a.name.cmp(&b.name));
        for c in &mut self.children {
            c.normalize();
        }
    }

    /// Strip bbolt-only facts so a model read from deadbolt compares equal.
    pub fn without_pgids(&self) -> Model {
        Model {
            name: self.name.clone(),
            sequence: self.sequence,
            root_pgid: None,
            kvs: self.kvs.clone(),
            children: self.children.iter().map(|c| c.without_pgids()).collect(),
        }
    }
}

/// Read the whole content of a bbolt image with the strict walker.
pub fn model_from_bolt(bytes: &[u8]) -> deadbolt::Result<Model> {
    let file = BoltFile::open(bytes)?;
    let mut w = Walker::new(file, false);
    model_from_walker(&mut w)
}

pub fn model_from_walker(w: &mut Walker<'_>) -> deadbolt::Result<Model> {
    let mut stack = vec![Model::default()];
    while let Some(ev) = w.next_event()? {
        match ev {
            Event::EnterBucket {
                name,
                sequence,
                root_pgid,
                ..
            } => stack.push(Model {
                name: name.to_vec(),
                sequence,
                root_pgid: Some(root_pgid),
                ..Model::default()
            }),
            Event::Kv { key, value } => stack
                .last_mut()
                .unwrap()
                .kvs
                .push((key.to_vec(), value.to_vec())),
            Event::LeaveBucket => {
                let b = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(b);
            }
            Event::Reenter => {
                // Back to the root, then down to the bucket the walk re-enters.
                while stack.len() > 1 {
                    let b = stack.pop().unwrap();
                    stack.last_mut().unwrap().children.push(b);
                }
                for name in w.path() {
                    let parent = stack.last_mut().unwrap();
                    let i = parent
                        .children
                        .iter()
                        .position(|c| c.name == *name)
                        .unwrap();
                    let b = parent.children.remove(i);
                    stack.push(b);
                }
            }
        }
    }
    while stack.len() > 1 {
        let b = stack.pop().unwrap();
        stack.last_mut().unwrap().children.push(b);
    }
    let mut root = stack.pop().unwrap();
    root.normalize();
    Ok(root)
}

/// Read a deadbolt database's whole content.
pub fn model_from_deadbolt(db: &deadbolt::Db) -> Model {
    let tx = db.begin_read().unwrap();
    let mut root = Model::default();
    let names: Vec<Vec<u8>> = tx.buckets().map(|n| n.unwrap().to_vec()).collect();
    for name in names {
        let b = tx.bucket(&name).unwrap().expect("listed bucket exists");
        root.children.push(bucket_model(&name, &b));
    }
    root
}

fn bucket_model(name: &[u8], b: &deadbolt::Bucket<'_>) -> Model {
    let mut m = Model {
        name: name.to_vec(),
        sequence: b.sequence(),
        ..Model::default()
    };
    for kv in b.iter() {
        let (k, v) = kv.unwrap();
        m.kvs.push((k.to_vec(), v.to_vec()));
    }
    let names: Vec<Vec<u8>> = b.buckets().map(|n| n.unwrap().to_vec()).collect();
    for n in names {
        let c = b.bucket(&n).unwrap().expect("listed nested bucket exists");
        m.children.push(bucket_model(&n, &c));
    }
    m
}

fn blob(out: &mut Vec<u8>, x: &[u8]) {
    out.extend_from_slice(&(x.len() as u32).to_be_bytes());
    out.extend_from_slice(x);
}

fn path_bytes(path: &[Vec<u8>]) -> Vec<u8> {
    let mut out = (path.len() as u32).to_be_bytes().to_vec();
    for c in path {
        blob(&mut out, c);
    }
    out
}

/// `(kv_sha256, tree_sha256)` as the corpus README defines them.
pub fn digests(root: &Model) -> (String, String) {
    let mut kv = Sha256::new();
    let mut tree = Sha256::new();
    visit(root, &mut Vec::new(), &mut kv, &mut tree);
    (hex(&kv.finalize()), hex(&tree.finalize()))
}

/// The digest of one bucket's own K records.
pub fn bucket_kv_digest(b: &Model, path: &[Vec<u8>]) -> String {
    let p = path_bytes(path);
    let mut h = Sha256::new();
    for (k, v) in &b.kvs {
        let mut r = vec![b'K'];
        r.extend_from_slice(&p);
        blob(&mut r, k);
        blob(&mut r, v);
        h.update(&r);
    }
    hex(&h.finalize())
}

fn visit(b: &Model, path: &mut Vec<Vec<u8>>, kv: &mut Sha256, tree: &mut Sha256) {
    let p = path_bytes(path);
    // Merge pairs and nested buckets in key order.
    let (mut i, mut j) = (0, 0);
    while i < b.kvs.len() || j < b.children.len() {
        let take_kv = match (b.kvs.get(i), b.children.get(j)) {
            (Some((k, _)), Some(c)) => k < &c.name,
            (Some(_), None) => true,
            _ => false,
        };
        let mut r = Vec::new();
        if take_kv {
            let (k, v) = &b.kvs[i];
            r.push(b'K');
            r.extend_from_slice(&p);
            blob(&mut r, k);
            blob(&mut r, v);
            kv.update(&r);
            i += 1;
        } else {
            let c = &b.children[j];
            r.push(b'B');
            r.extend_from_slice(&p);
            blob(&mut r, &c.name);
            r.extend_from_slice(&c.sequence.to_be_bytes());
            j += 1;
        }
        tree.update(&r);
    }
    for c in &b.children {
        path.push(c.name.clone());
        visit(c, path, kv, tree);
        path.pop();
    }
}

/// Compare a model with a manifest's `content`, entry by entry. `check_pgids` also compares
/// the bucket headers' root pages (bbolt side only).
pub fn compare_with_manifest(root: &Model, content: &Value, what: &str) {
    assert_eq!(
        root.kv_total(),
        u64_of(&content["total_kv_pairs"]),
        "{what}: total_kv_pairs"
    );
    assert_eq!(
        root.bucket_total(),
        u64_of(&content["total_buckets"]),
        "{what}: total_buckets"
    );
    let (kv, tree) = digests(root);
    assert_eq!(
        kv,
        content["kv_sha256"].as_str().unwrap(),
        "{what}: kv_sha256"
    );
    assert_eq!(
        tree,
        content["tree_sha256"].as_str().unwrap(),
        "{what}: tree_sha256"
    );
    compare_buckets(root, &content["buckets"], &mut Vec::new(), what);
}

fn compare_buckets(parent: &Model, list: &Value, path: &mut Vec<Vec<u8>>, what: &str) {
    let list = list.as_array().map(|a| a.as_slice()).unwrap_or(&[]);
    assert_eq!(
        parent.children.len(),
        list.len(),
        "{what}: bucket count under {path:?}"
    );
    for (m, j) in parent.children.iter().zip(list) {
        let name = unhex(j["name_hex"].as_str().unwrap());
        assert_eq!(m.name, name, "{what}: bucket name under {path:?}");
        path.push(name);
        let at = format!(
            "{what}: bucket {:?}",
            path.iter()
                .map(|p| String::from_utf8_lossy(p))
                .collect::<Vec<_>>()
        );
        assert_eq!(m.sequence, u64_of(&j["sequence"]), "{at}: sequence");
        if let Some(root) = m.root_pgid {
            assert_eq!(root, u64_of(&j["root_pgid"]), "{at}: root_pgid");
            assert_eq!(root == 0, j["inline"].as_bool().unwrap(), "{at}: inline");
        }
        assert_eq!(m.kvs.len() as u64, u64_of(&j["kv_count"]), "{at}: kv_count");
        assert_eq!(
            m.children.len() as u64,
            u64_of(&j["bucket_count"]),
            "{at}: bucket_count"
        );
        assert_eq!(
            bucket_kv_digest(m, path),
            j["kv_sha256"].as_str().unwrap(),
            "{at}: kv_sha256"
        );
        let truncated = j["truncated"].as_bool().unwrap_or(false);
        let entries = if truncated {
            &j["sample"]
        } else {
            &j["entries"]
        };
        let entries = entries.as_array().map(|a| a.as_slice()).unwrap_or(&[]);
        if !truncated {
            assert_eq!(entries.len(), m.kvs.len(), "{at}: entries listed");
        } else {
            assert!(entries.len() >= 2, "{at}: sample");
        }
        for e in entries {
            let idx = u64_of(&e["index"]) as usize;
            let (k, v) = &m.kvs[idx];
            assert_eq!(
                hex(k),
                e["key_hex"].as_str().unwrap(),
                "{at}: key of entry {idx}"
            );
            assert_eq!(
                v.len() as u64,
                u64_of(&e["value_len"]),
                "{at}: value_len of entry {idx}"
            );
            if let Some(vh) = e.get("value_hex") {
                assert_eq!(hex(v), vh.as_str().unwrap(), "{at}: value of entry {idx}");
            } else {
                assert_eq!(
                    sha_hex(v),
                    e["value_sha256"].as_str().unwrap(),
                    "{at}: value_sha256 of entry {idx}"
                );
                assert_eq!(
                    hex(&v[..64.min(v.len())]),
                    e["value_prefix_hex"].as_str().unwrap(),
                    "{at}: value prefix of entry {idx}"
                );
            }
        }
        if truncated {
            let last = entries.last().unwrap();
            assert_eq!(
                u64_of(&last["index"]) as usize,
                m.kvs.len() - 1,
                "{at}: sample ends at the last key"
            );
        }
        compare_buckets(m, &j["buckets"], path, what);
        path.pop();
    }
}
