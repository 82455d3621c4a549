//! Model-based randomized test: every operation is applied to deadbolt and to a `BTreeMap`
//! model; after every commit, rollback and reopen the whole database must equal the model and
//! pass the integrity check. Replay a failing seed with `DEADBOLT_SEED=N` (the failure prints
//! the command).
//!
//! Two drivers share the operations and the verification:
//! - `run`: random operations over random buckets, keys and values (empty to several pages).
//! - `run_inline`: the shapes inline buckets (issue 15) depend on, in phases at 1-4 KiB pages:
//!   many small buckets (0-5 small keys), grown a few bytes at a time across commits past a
//!   quarter page and shrunk back below it, a nested bucket created in and deleted from small
//!   buckets (a bucket with a child is inline only if the child is inline or empty, format 6),
//!   sequences as a transaction's only change, and deletion of small and large buckets, with
//!   reopens between the phases.
//!
//! The verification reads every bucket with cursors (first/last/next/prev/seek, buckets
//! included), iterators and ranges from both ends (interleaved too), point reads and
//! `Bucket::stats` key and bucket counts; sometimes inside the write transaction and in a
//! read transaction that was opened before the commit (it must still see the old state).

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use common::{for_seeds, Rng};
use deadbolt::{Bucket, Db, Entry, Error, MemStorage, Options, Tx};

type Path = Vec<Vec<u8>>;

#[derive(Clone, Default, Debug, PartialEq)]
struct BModel {
    seq: u64,
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Buckets by path; a bucket's children are the paths one longer that extend it.
type Model = BTreeMap<Path, BModel>;

fn children(m: &Model, path: &Path) -> Vec<Vec<u8>> {
    m.keys()
        .filter(|p| p.len() == path.len() + 1 && p.starts_with(path))
        .map(|p| p[path.len()].clone())
        .collect()
}

fn resolve<'a>(tx: &'a Tx<'a>, path: &Path) -> Bucket<'a> {
    let mut b = tx.bucket(&path[0]).unwrap().expect("bucket exists");
    for n in &path[1..] {
        b = b.bucket(n).unwrap().expect("nested bucket exists");
    }
    b
}

fn trace() -> bool {
    std::env::var("DEADBOLT_TRACE").is_ok()
}

fn key(rng: &mut Rng) -> Vec<u8> {
    match rng.below(20) {
        0 => vec![b'L'; 1 + rng.below(3000) as usize],
        1 => vec![0u8],
        2 => vec![0xff; 2],
        _ => format!("k{:03}", rng.below(300)).into_bytes(),
    }
}

fn value(rng: &mut Rng, page: usize) -> Vec<u8> {
    let n = match rng.below(20) {
        0 => 0,
        1 => page - 40 + rng.below(80) as usize,
        2 => page * (2 + rng.below(3) as usize) + rng.below(100) as usize,
        3 => 200 + rng.below(1000) as usize,
        _ => rng.below(64) as usize,
    };
    rng.bytes(n)
}

// ---------------------------------------------------------------------------------------------
// Small buckets

/// A key of a small bucket: 4 bytes, from an alphabet of 200 (disjoint from the bucket names).
fn small_key(rng: &mut Rng) -> Vec<u8> {
    format!("s{:03}", rng.below(200)).into_bytes()
}

/// A value of a small bucket: 0-24 bytes.
fn small_value(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(25) as usize;
    rng.bytes(n)
}

/// About the bytes a bucket's own entries take in a leaf (a 16-byte header per page and per
/// element, a nested bucket's header as 16 more). Only a yardstick for the generators, which
/// walk sizes through a band around a quarter page: the engine's inline rule is its own.
fn content(m: &Model, path: &Path) -> usize {
    let kv: usize = m[path].kv.iter().map(|(k, v)| 16 + k.len() + v.len()).sum();
    let subs: usize = m
        .range(path.clone()..)
        .take_while(|(p, _)| p.starts_with(path))
        .filter(|(p, _)| p.len() == path.len() + 1)
        .map(|(p, _)| 32 + p[path.len()].len())
        .sum();
    16 + kv + subs
}

/// Keys in the bucket at `path` and every bucket under it, and the number of buckets under it
/// (what `Bucket::stats` counts).
fn subtree_counts(m: &Model, path: &Path) -> (u64, u64) {
    let mut keys = 0;
    let mut buckets = 0;
    for (p, bm) in m.range(path.clone()..) {
        if !p.starts_with(path) {
            break;
        }
        keys += bm.kv.len() as u64;
        if p.len() > path.len() {
            buckets += 1;
        }
    }
    (keys, buckets)
}

fn pick<'a, T>(rng: &mut Rng, v: &'a [T]) -> &'a T {
    &v[rng.below(v.len() as u64) as usize]
}

// ---------------------------------------------------------------------------------------------
// Operations on the transaction and the model together; each checks the engine's answer
// against what the model expects.

fn do_put(tx: &Tx<'_>, work: &mut Model, path: &Path, k: Vec<u8>, v: Vec<u8>, seed: u64) {
    let is_bucket = work.contains_key(&[path.clone(), vec![k.clone()]].concat());
    match resolve(tx, path).put(&k, &v) {
        Ok(()) => {
            assert!(!is_bucket, "seed {seed}: put over a bucket in {path:?}");
            work.get_mut(path).unwrap().kv.insert(k, v);
        }
        Err(Error::IncompatibleValue) => assert!(is_bucket, "seed {seed}: put refused"),
        Err(e) => panic!("seed {seed}: put: {e}"),
    }
}

fn do_delete(tx: &Tx<'_>, work: &mut Model, path: &Path, k: &[u8], seed: u64) {
    let is_bucket = work.contains_key(&[path.clone(), vec![k.to_vec()]].concat());
    match resolve(tx, path).delete(k) {
        Ok(()) => {
            assert!(
                !is_bucket,
                "seed {seed}: delete of a bucket name in {path:?}"
            );
            work.get_mut(path).unwrap().kv.remove(k);
        }
        Err(Error::IncompatibleValue) => assert!(is_bucket, "seed {seed}: delete refused"),
        Err(e) => panic!("seed {seed}: delete: {e}"),
    }
}

/// Create `parent/name`; the new path when it did not exist.
fn do_create(tx: &Tx<'_>, work: &mut Model, parent: &Path, name: &[u8], seed: u64) -> Option<Path> {
    let mut p = parent.clone();
    p.push(name.to_vec());
    let r = if parent.is_empty() {
        tx.create_bucket(name).map(|_| ())
    } else {
        resolve(tx, parent).create_bucket(name).map(|_| ())
    };
    let is_key = !parent.is_empty() && work[parent].kv.contains_key(name);
    match r {
        Ok(()) => {
            assert!(
                !work.contains_key(&p) && !is_key,
                "seed {seed}: created an existing name"
            );
            work.insert(p.clone(), BModel::default());
            Some(p)
        }
        Err(Error::BucketExists) => {
            assert!(work.contains_key(&p), "seed {seed}: {p:?} exists?");
            None
        }
        Err(Error::IncompatibleValue) => {
            assert!(is_key, "seed {seed}: {p:?} incompatible?");
            None
        }
        Err(e) => panic!("seed {seed}: create_bucket: {e}"),
    }
}

/// Delete the bucket at `path` and everything under it.
fn do_delete_bucket(tx: &Tx<'_>, work: &mut Model, path: &Path, seed: u64) {
    let r = if path.len() == 1 {
        tx.delete_bucket(&path[0])
    } else {
        resolve(tx, &path[..path.len() - 1].to_vec()).delete_bucket(path.last().unwrap())
    };
    if let Err(e) = r {
        panic!("seed {seed}: delete_bucket {path:?}: {e}");
    }
    work.retain(|p, _| !p.starts_with(path));
}

/// Set or advance the sequence of the bucket at `path`.
fn do_sequence(tx: &Tx<'_>, work: &mut Model, path: &Path, rng: &mut Rng, seed: u64) {
    let b = resolve(tx, path);
    let bm = work.get_mut(path).unwrap();
    if rng.chance(50) || bm.seq == u64::MAX {
        let v = rng.next_u64() >> rng.below(64);
        b.set_sequence(v).unwrap();
        bm.seq = v;
    } else {
        assert_eq!(
            b.next_sequence().unwrap(),
            bm.seq + 1,
            "seed {seed}: next_sequence"
        );
        bm.seq += 1;
    }
    assert_eq!(
        b.sequence(),
        bm.seq,
        "seed {seed}: sequence in the transaction"
    );
}

/// Delete keys through a cursor from a random start: up to `n` keys (nested buckets skipped).
fn cursor_delete(tx: &Tx<'_>, work: &mut Model, path: &Path, start: &[u8], n: u64) {
    let mut c = resolve(tx, path).cursor();
    let mut e = c.seek(start).unwrap();
    for _ in 0..n {
        let Some(en) = e else { break };
        if en.value.is_some() {
            let k = en.key.to_vec();
            c.delete().unwrap();
            work.get_mut(path).unwrap().kv.remove(&k);
        }
        e = c.next().unwrap();
    }
}

/// Grow the bucket at `path` with small puts (new keys, and existing values made longer) until
/// its content reaches `target` bytes.
fn grow(tx: &Tx<'_>, work: &mut Model, path: &Path, target: usize, rng: &mut Rng, seed: u64) {
    for _ in 0..1000 {
        if content(work, path) >= target {
            return;
        }
        let kv = &work[path].kv;
        if !kv.is_empty() && rng.chance(15) {
            let (k, v) = kv.iter().nth(rng.below(kv.len() as u64) as usize).unwrap();
            let (k, n) = (k.clone(), v.len() + 1 + rng.below(40) as usize);
            do_put(tx, work, path, k, rng.bytes(n), seed);
        } else {
            do_put(tx, work, path, small_key(rng), small_value(rng), seed);
        }
    }
}

/// Shrink the bucket at `path` (deletes, cursor deletes, shorter values) until its content is
/// at most `target` bytes or it has no keys left.
fn shrink(tx: &Tx<'_>, work: &mut Model, path: &Path, target: usize, rng: &mut Rng, seed: u64) {
    for _ in 0..1000 {
        let kv = &work[path].kv;
        if content(work, path) <= target || kv.is_empty() {
            return;
        }
        let (k, v) = kv.iter().nth(rng.below(kv.len() as u64) as usize).unwrap();
        let (k, n) = (k.clone(), v.len());
        match rng.below(10) {
            0 if n > 0 => {
                let m = rng.below(n as u64) as usize;
                do_put(tx, work, path, k, rng.bytes(m), seed);
            }
            1 => cursor_delete(tx, work, path, &k, 1 + rng.below(4)),
            _ => do_delete(tx, work, path, &k, seed),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

/// What a cursor position must show, borrowed from the model: the key, and the value (`None`
/// for a nested bucket).
type Ent<'m> = (&'m [u8], Option<&'m [u8]>);

/// A key/value pair as an iterator yields it.
type Pair<'t> = (Cow<'t, [u8]>, Cow<'t, [u8]>);

/// Whether a cursor's answer is the expected position (`None`: past either end).
fn same(got: &Option<Entry<'_>>, want: Option<&Ent<'_>>) -> bool {
    match (got, want) {
        (None, None) => true,
        (Some(e), Some((k, v))) => e.key.as_ref() == *k && e.value.as_deref() == *v,
        _ => false,
    }
}

/// Whether iterator output equals the model's pairs.
fn same_pairs(got: &[Pair<'_>], want: &[(&[u8], &[u8])]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|((k, v), (wk, wv))| k.as_ref() == *wk && v.as_ref() == *wv)
}

fn keys_of(got: &Option<Entry<'_>>) -> Option<Vec<u8>> {
    got.as_ref().map(|e| e.key.to_vec())
}

/// What a cursor over the bucket at `path` must show: keys and nested buckets in key order.
fn entries<'m>(m: &'m Model, path: &Path) -> Vec<Ent<'m>> {
    let mut v: Vec<Ent<'m>> = m[path]
        .kv
        .iter()
        .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
        .collect();
    v.extend(
        m.range(path.clone()..)
            .take_while(|(p, _)| p.starts_with(path))
            .filter(|(p, _)| p.len() == path.len() + 1)
            .map(|(p, _)| (p[path.len()].as_slice(), None)),
    );
    v.sort();
    v
}

/// Keys to seek to and bound ranges by: present ones, their neighbours, absent ones.
fn probes(ents: &[Ent<'_>], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut p = vec![vec![0u8], vec![0xff; 3], small_key(rng), key(rng)];
    for _ in 0..3 {
        if let Some((k, _)) = ents.get(rng.below(ents.len() as u64 + 1) as usize) {
            let mut after = k.to_vec();
            after.push(0);
            p.push(after);
            p.push(k[..k.len() - 1].to_vec());
            p.push(k.to_vec());
        }
    }
    p.retain(|k| !k.is_empty());
    p
}

/// Cursor walks over a bucket: first..next to the end, last..prev to the start, seeks followed
/// by random steps either way, each position compared with the model's entries.
fn check_cursor(b: &Bucket<'_>, ents: &[Ent<'_>], probes: &[Vec<u8>], rng: &mut Rng, ctx: &str) {
    let mut c = b.cursor();
    // The whole way in both directions only over small buckets (iter() covers large ones).
    let walks = if ents.len() <= 64 { ents.len() + 1 } else { 8 };
    let mut got = c.first().unwrap();
    for i in 0..walks {
        let want = ents.get(i);
        assert!(
            same(&got, want),
            "{ctx}: cursor first/next at {i}: {:?}",
            keys_of(&got)
        );
        if got.is_none() {
            break;
        }
        got = c.next().unwrap();
    }
    let mut got = c.last().unwrap();
    for i in (ents.len() + 1 - walks..=ents.len()).rev() {
        let want = i.checked_sub(1).map(|j| &ents[j]);
        assert!(
            same(&got, want),
            "{ctx}: cursor last/prev at {i}: {:?}",
            keys_of(&got)
        );
        if got.is_none() {
            break;
        }
        got = c.prev().unwrap();
    }
    for _ in 0..3 {
        let k = pick(rng, probes);
        let mut at = ents.partition_point(|(e, _)| *e < k.as_slice());
        let got = c.seek(k).unwrap();
        assert!(
            same(&got, ents.get(at)),
            "{ctx}: seek {k:?}: {:?}",
            keys_of(&got)
        );
        if at == ents.len() {
            continue;
        }
        for _ in 0..rng.below(6) {
            let (got, want) = if rng.chance(50) {
                at += 1;
                (c.next().unwrap(), ents.get(at))
            } else if at == 0 {
                (c.prev().unwrap(), None)
            } else {
                at -= 1;
                (c.prev().unwrap(), Some(&ents[at]))
            };
            assert!(
                same(&got, want),
                "{ctx}: step after seek {k:?}: {:?}",
                keys_of(&got)
            );
            if got.is_none() {
                break;
            }
        }
    }
}

fn in_bounds(k: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    let above = match lo {
        Bound::Unbounded => true,
        Bound::Included(l) => k >= l.as_slice(),
        Bound::Excluded(l) => k > l.as_slice(),
    };
    let below = match hi {
        Bound::Unbounded => true,
        Bound::Included(h) => k <= h.as_slice(),
        Bound::Excluded(h) => k < h.as_slice(),
    };
    above && below
}

/// Ranges with random bounds (inclusive, exclusive, open; also empty and inverted ones), read
/// forwards, backwards and from both ends at once.
fn check_ranges(b: &Bucket<'_>, bm: &BModel, probes: &[Vec<u8>], rng: &mut Rng, ctx: &str) {
    let bound = |rng: &mut Rng| match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(pick(rng, probes).clone()),
        _ => Bound::Excluded(pick(rng, probes).clone()),
    };
    for _ in 0..if bm.kv.len() <= 64 { 2 } else { 1 } {
        let (lo, hi) = (bound(rng), bound(rng));
        let want: Vec<(&[u8], &[u8])> = bm
            .kv
            .iter()
            .filter(|(k, _)| in_bounds(k, &lo, &hi))
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let range = || b.range::<Vec<u8>, _>((lo.clone(), hi.clone()));
        let fwd: Vec<Pair> = range().map(Result::unwrap).collect();
        assert!(same_pairs(&fwd, &want), "{ctx}: range {lo:?}..{hi:?}");
        let mut back: Vec<Pair> = range().rev().map(Result::unwrap).collect();
        back.reverse();
        assert!(
            same_pairs(&back, &want),
            "{ctx}: reverse range {lo:?}..{hi:?}"
        );
        let mut it = range();
        let (mut front, mut back) = (Vec::new(), Vec::new());
        loop {
            if rng.chance(50) {
                match it.next() {
                    Some(r) => front.push(r.unwrap()),
                    None => break,
                }
            } else {
                match it.next_back() {
                    Some(r) => back.push(r.unwrap()),
                    None => break,
                }
            }
        }
        front.extend(back.into_iter().rev());
        assert!(
            same_pairs(&front, &want),
            "{ctx}: range {lo:?}..{hi:?} from both ends"
        );
    }
}

/// `Bucket::stats` key and bucket counts against the model. (It once refused, as "more
/// buckets than pages", a bucket with more nested buckets than the file has pages, which many
/// empty or inline buckets reach without any damage; the answer must now always be right.)
fn check_stats(b: &Bucket<'_>, m: &Model, path: &Path, _hwm: u64, ctx: &str) {
    let (keys, buckets) = subtree_counts(m, path);
    match b.stats() {
        Ok(st) => assert_eq!(
            (st.keys, st.buckets),
            (keys, buckets),
            "{ctx}: stats (keys, buckets) of {path:?}"
        ),
        Err(e) => panic!("{ctx}: stats of {path:?}: {e}"),
    }
}

/// Everything in `tx` against `model`: names, sequences, contents in both directions, cursors,
/// ranges, point reads, stats. `hwm`: the high-water mark of the transaction's snapshot.
fn verify_tx(tx: &Tx<'_>, model: &Model, hwm: u64, rng: &mut Rng, ctx: &str) {
    let top: Vec<Vec<u8>> = tx.buckets().map(|r| r.unwrap().to_vec()).collect();
    assert_eq!(top, children(model, &vec![]), "{ctx}: top-level buckets");
    for (path, bm) in model.iter() {
        let b = resolve(tx, path);
        assert_eq!(b.sequence(), bm.seq, "{ctx}: sequence of {path:?}");
        let want: Vec<(&[u8], &[u8])> = bm
            .kv
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let got: Vec<Pair> = b.iter().map(Result::unwrap).collect();
        assert_eq!(got.len(), want.len(), "{ctx}: count in {path:?}");
        assert!(same_pairs(&got, &want), "{ctx}: contents of {path:?}");
        let mut back: Vec<Pair> = b.iter().rev().map(Result::unwrap).collect();
        back.reverse();
        assert!(
            same_pairs(&back, &want),
            "{ctx}: reverse contents of {path:?}"
        );
        let names: Vec<Vec<u8>> = b.buckets().map(|r| r.unwrap().to_vec()).collect();
        assert_eq!(
            names,
            children(model, path),
            "{ctx}: nested buckets of {path:?}"
        );
        // Point reads: present keys, a nested bucket's name, an absent key.
        for (k, v) in bm.kv.iter().take(5) {
            assert_eq!(b.get(k).unwrap().as_deref(), Some(v.as_slice()));
        }
        if let Some(n) = names.first() {
            assert!(
                matches!(b.get(n), Err(Error::IncompatibleValue)),
                "{ctx}: get of bucket name {n:?} in {path:?}"
            );
        }
        let absent = small_key(rng);
        if !bm.kv.contains_key(&absent) {
            assert_eq!(
                b.get(&absent).unwrap(),
                None,
                "{ctx}: get absent in {path:?}"
            );
        }
        // Cursors, ranges and stats: on every small bucket, on a quarter of the others.
        let ents = entries(model, path);
        if ents.len() > 64 && !rng.chance(25) {
            continue;
        }
        let probes = probes(&ents, rng);
        let ctx = format!("{ctx}: bucket {path:?}");
        check_cursor(&b, &ents, &probes, rng, &ctx);
        check_ranges(&b, bm, &probes, rng, &ctx);
        check_stats(&b, model, path, hwm, &ctx);
    }
}

/// The newest snapshot against `model`, and the integrity check.
fn verify(db: &Db, model: &Model, rng: &mut Rng, ctx: &str) {
    let hwm = db.stats().high_water;
    db.view(|tx| {
        verify_tx(tx, model, hwm, rng, ctx);
        Ok::<_, Error>(())
    })
    .unwrap();
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{ctx}: check failed:\n{report}");
}

/// Close and reopen on the same storage: a clean reopen, and the same contents.
fn reopen(
    db: Db,
    storage: &Arc<MemStorage>,
    opts: &Options,
    model: &Model,
    rng: &mut Rng,
    ctx: &str,
) -> Db {
    drop(db);
    let db = Db::open_storage(storage.clone(), opts.clone()).unwrap();
    if trace() {
        eprintln!("reopened");
    }
    assert!(
        db.recovery().rolled_back.is_none(),
        "{ctx}: clean reopen rolled back"
    );
    verify(&db, model, rng, &format!("{ctx}, reopened"));
    db
}

/// Delete every bucket, commit a little more, and require the file's pages back (almost): a
/// leak of any page a bucket held shows here.
fn delete_all(db: &Db, seed: u64) {
    db.update(|tx| {
        let names: Vec<Vec<u8>> = tx.buckets().map(|r| r.unwrap().to_vec()).collect();
        for n in names {
            tx.delete_bucket(&n)?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    for _ in 0..3 {
        db.update(|tx| {
            tx.create_bucket_if_not_exists(b"x")?.put(b"k", b"v")?;
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    let st = db.stats();
    assert!(
        st.high_water <= 16,
        "seed {seed}: {} pages still in use after deleting everything: {st:?}",
        st.high_water
    );
    assert!(db.check().unwrap().is_ok());
}

fn run(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut vr = Rng::new(!seed);
    let page_size = [1024usize, 4096, 4096, 16384][rng.below(4) as usize];
    let q = page_size / 4;
    let storage = Arc::new(MemStorage::new());
    let opts = Options {
        page_size,
        ..Options::default()
    };
    let mut db = Db::open_storage(storage.clone(), opts.clone()).unwrap();
    let mut model: Model = BTreeMap::new();
    // A random bucket's path (not by collecting all of them for every op: slow).
    let any = |rng: &mut Rng, work: &Model| {
        let i = rng.below(work.len() as u64) as usize;
        work.keys().nth(i).unwrap().clone()
    };
    let txs = 25;
    for t in 0..txs {
        let ctx = format!("seed {seed}: tx {t}");
        let hwm = db.stats().high_water;
        // A reader from before the transaction keeps seeing the state before it.
        let old = rng.chance(10).then(|| db.begin_read().unwrap());
        let mut work = model.clone();
        let mut tx = db.begin_write().unwrap();
        let big = rng.chance(10);
        let nops = 1 + rng.below(if big { 600 } else { 60 });
        for _ in 0..nops {
            let op = rng.below(102);
            if trace() {
                eprintln!("op {op}");
            }
            if work.is_empty() || op < 6 {
                // Create a bucket, top-level or nested.
                let parent: Path = if work.is_empty() || rng.chance(40) {
                    vec![]
                } else {
                    any(&mut rng, &work)
                };
                let name = format!("b{}", rng.below(6)).into_bytes();
                do_create(&tx, &mut work, &parent, &name, seed);
                continue;
            }
            let path = any(&mut rng, &work);
            match op {
                // Delete a bucket (and everything under it).
                6..=8 => do_delete_bucket(&tx, &mut work, &path, seed),
                9..=10 => do_sequence(&tx, &mut work, &path, &mut rng, seed),
                11..=13 => {
                    let (start, n) = (key(&mut rng), rng.below(40));
                    cursor_delete(&tx, &mut work, &path, &start, n)
                }
                14..=30 => do_delete(&tx, &mut work, &path, &key(&mut rng), seed),
                31..=35 => {
                    // Delete everything in the bucket.
                    let keys: Vec<Vec<u8>> = work[&path].kv.keys().cloned().collect();
                    for k in keys {
                        do_delete(&tx, &mut work, &path, &k, seed);
                    }
                }
                100 => {
                    // A small bucket (0-5 small keys), nested here or at the top.
                    let parent = if rng.chance(30) { vec![] } else { path.clone() };
                    let name = format!("b{}", rng.below(6)).into_bytes();
                    if let Some(p) = do_create(&tx, &mut work, &parent, &name, seed) {
                        for _ in 0..rng.below(6) {
                            let (k, v) = (small_key(&mut rng), small_value(&mut rng));
                            do_put(&tx, &mut work, &p, k, v, seed);
                        }
                    }
                }
                // Past a quarter page by small puts, or back below it by deletes.
                101 if rng.chance(50) => {
                    let target = q + rng.below(q as u64 / 2) as usize;
                    grow(&tx, &mut work, &path, target, &mut rng, seed)
                }
                101 => {
                    let target = q - q / 8 - rng.below(q as u64 / 2) as usize;
                    shrink(&tx, &mut work, &path, target, &mut rng, seed)
                }
                _ => {
                    let (k, v) = (key(&mut rng), value(&mut rng, page_size));
                    do_put(&tx, &mut work, &path, k, v, seed);
                }
            }
            if std::env::var("DEADBOLT_COMMIT_EACH").is_ok() {
                tx.commit().unwrap();
                let r = db.check().unwrap();
                if !r.is_ok() {
                    panic!("after op {op} on {path:?}: {r}");
                }
                tx = db.begin_write().unwrap();
                continue;
            }
            // Reads inside the write transaction see its own changes.
            if rng.chance(5) && work.contains_key(&path) {
                let bm = &work[&path];
                let got: Vec<Vec<u8>> = resolve(&tx, &path)
                    .iter()
                    .map(|r| r.unwrap().0.to_vec())
                    .collect();
                let want: Vec<Vec<u8>> = bm.kv.keys().cloned().collect();
                assert_eq!(got, want, "seed {seed}: in-transaction view of {path:?}");
            }
        }
        if trace() {
            eprintln!("end of tx; stats {:?}", db.stats());
        }
        if rng.chance(5) {
            verify_tx(
                &tx,
                &work,
                hwm,
                &mut vr,
                &format!("{ctx}, in the transaction"),
            );
        }
        let committed = !rng.chance(15);
        if committed {
            tx.commit().unwrap();
            std::mem::swap(&mut model, &mut work);
        } else {
            tx.rollback();
        }
        if trace() {
            eprintln!(
                "after commit/rollback: {:?}\n{}",
                db.stats(),
                db.check().unwrap()
            );
        }
        if let Some(old) = &old {
            let before = if committed { &work } else { &model };
            verify_tx(
                old,
                before,
                hwm,
                &mut vr,
                &format!("{ctx}, reader from before"),
            );
        }
        drop(old);
        verify(&db, &model, &mut vr, &ctx);
        if rng.chance(20) {
            db = reopen(db, &storage, &opts, &model, &mut vr, &ctx);
        }
    }
    delete_all(&db, seed);
}

/// A database, its model, and the transaction steps of [`run_inline`].
struct Run {
    seed: u64,
    storage: Arc<MemStorage>,
    opts: Options,
    db: Option<Db>,
    model: Model,
    /// The verification's own generator (so that the operations do not depend on it).
    vr: Rng,
    txs: u32,
}

impl Run {
    fn new(seed: u64, page_size: usize) -> Run {
        let storage = Arc::new(MemStorage::new());
        let opts = Options {
            page_size,
            ..Options::default()
        };
        let db = Db::open_storage(storage.clone(), opts.clone()).unwrap();
        Run {
            seed,
            storage,
            opts,
            db: Some(db),
            model: Model::new(),
            vr: Rng::new(!seed),
            txs: 0,
        }
    }

    /// One write transaction running `f`, rolled back instead of committed `roll`% of the
    /// time; then the verification (sometimes also inside the transaction, and of a reader
    /// opened before it) and 15% of the time a reopen.
    fn tx(
        &mut self,
        rng: &mut Rng,
        what: &str,
        roll: u64,
        f: impl FnOnce(&Tx<'_>, &mut Model, &mut Rng),
    ) {
        self.txs += 1;
        let ctx = format!("seed {}: tx {} ({what})", self.seed, self.txs);
        if trace() {
            eprintln!("{ctx}");
        }
        let db = self.db.as_ref().unwrap();
        let hwm = db.stats().high_water;
        let old = rng.chance(25).then(|| db.begin_read().unwrap());
        let mut work = self.model.clone();
        let tx = db.begin_write().unwrap();
        f(&tx, &mut work, rng);
        if rng.chance(30) {
            let ctx = format!("{ctx}, in the transaction");
            verify_tx(&tx, &work, hwm, &mut self.vr, &ctx);
        }
        let commit = !rng.chance(roll);
        if commit {
            tx.commit().unwrap();
        } else {
            tx.rollback();
        }
        if let Some(old) = &old {
            let ctx = format!("{ctx}, reader from before");
            verify_tx(old, &self.model, hwm, &mut self.vr, &ctx);
        }
        drop(old);
        if commit {
            self.model = work;
        }
        verify(db, &self.model, &mut self.vr, &ctx);
        if rng.chance(15) {
            self.reopen(&ctx);
        }
    }

    fn reopen(&mut self, ctx: &str) {
        let db = self.db.take().unwrap();
        self.db = Some(reopen(
            db,
            &self.storage,
            &self.opts,
            &self.model,
            &mut self.vr,
            ctx,
        ));
    }

    /// Buckets other than the large one that have no nested bucket: those a quarter-page rule
    /// can store inline.
    fn leaves(&self) -> Vec<Path> {
        self.model
            .keys()
            .filter(|p| p[0] != b"large" && children(&self.model, p).is_empty())
            .cloned()
            .collect()
    }
}

/// Inline buckets' life cycle, in phases (see the file's comment). `q` is a quarter page.
fn run_inline(seed: u64) {
    let mut rng = Rng::new(seed);
    let page = [1024usize, 1024, 2048, 4096, 4096][rng.below(5) as usize];
    let q = page / 4;
    let mut r = Run::new(seed, page);
    // Many small buckets: top-level and nested up to three deep, 0-5 small keys each, some
    // with a sequence; a large bucket of several pages with two small ones inside.
    r.tx(&mut rng, "small buckets", 0, |tx, w, rng| {
        for _ in 0..8 + rng.below(17) {
            let parents: Vec<Path> = w.keys().filter(|p| p.len() < 3).cloned().collect();
            let parent = if parents.is_empty() || rng.chance(30) {
                vec![]
            } else {
                pick(rng, &parents).clone()
            };
            let name = format!("s{:02}", rng.below(40)).into_bytes();
            if let Some(p) = do_create(tx, w, &parent, &name, seed) {
                for _ in 0..rng.below(6) {
                    let (k, v) = (small_key(rng), small_value(rng));
                    do_put(tx, w, &p, k, v, seed);
                }
                if rng.chance(20) {
                    do_sequence(tx, w, &p, rng, seed);
                }
            }
        }
        let large = do_create(tx, w, &vec![], b"large", seed).unwrap();
        for i in 0..4 + rng.below(4) {
            let n = page / 2 + rng.below(2 * page as u64) as usize;
            do_put(
                tx,
                w,
                &large,
                format!("v{i}").into_bytes(),
                rng.bytes(n),
                seed,
            );
        }
        for name in [b"s00", b"s01"] {
            let p = do_create(tx, w, &large, name, seed).unwrap();
            let (k, v) = (small_key(rng), small_value(rng));
            do_put(tx, w, &p, k, v, seed);
        }
    });
    // Growth: each bucket walks to its own target in [q/2, 2q) by steps of 1/32 to 5/32 of a
    // page, one step per commit, so that the commits see sizes all around a quarter page. One
    // new bucket per commit grows past it inside the transaction that creates it.
    let targets: Vec<(Path, usize)> = r
        .model
        .keys()
        .filter(|p| p[0] != b"large")
        .map(|p| (p.clone(), q / 2 + rng.below(3 * q as u64 / 2) as usize))
        .collect();
    for round in 0..3 + rng.below(4) {
        r.tx(&mut rng, "grow", 10, |tx, w, rng| {
            for (p, t) in &targets {
                if w.contains_key(p) && rng.chance(80) {
                    let step = page / 32 + rng.below(page as u64 / 8) as usize;
                    let to = (*t).min(content(w, p) + step);
                    grow(tx, w, p, to, rng, seed);
                }
            }
            let name = format!("g{round}").into_bytes();
            if let Some(p) = do_create(tx, w, &vec![], &name, seed) {
                let to = q + rng.below(q as u64) as usize;
                grow(tx, w, &p, to, rng, seed);
                if rng.chance(50) {
                    shrink(tx, w, &p, q / 2, rng, seed);
                }
            }
        });
    }
    r.reopen(&format!("seed {seed}: after growth"));
    // A nested bucket in buckets without one (which then stay inline only if it is): created
    // (empty, with a key, or with a child of its own) in one commit, deleted in the next; and
    // one created and deleted in the same transaction.
    let mut hosts = r.leaves();
    hosts.retain(|p| p.len() < 4);
    let (hosts, others): (Vec<Path>, Vec<Path>) = hosts.into_iter().partition(|_| rng.chance(30));
    r.tx(&mut rng, "nested in", 10, |tx, w, rng| {
        for h in &hosts {
            let Some(c) = do_create(tx, w, h, b"n", seed) else {
                continue;
            };
            match rng.below(3) {
                0 => {}
                1 => do_put(tx, w, &c, small_key(rng), small_value(rng), seed),
                _ => {
                    do_create(tx, w, &c, b"g", seed);
                }
            }
        }
    });
    r.tx(&mut rng, "nested out", 10, |tx, w, rng| {
        for h in &hosts {
            let c = [h.clone(), vec![b"n".to_vec()]].concat();
            if w.contains_key(&c) {
                do_delete_bucket(tx, w, &c, seed);
            }
        }
        if !others.is_empty() {
            let h = pick(rng, &others);
            if let Some(c) = do_create(tx, w, h, b"m", seed) {
                do_put(tx, w, &c, small_key(rng), small_value(rng), seed);
                do_delete_bucket(tx, w, &c, seed);
            }
        }
    });
    // Shrinking: each bucket above q/4 walks down to its own target in [q/8, q) the same way.
    let targets: Vec<(Path, usize)> = r
        .model
        .keys()
        .filter(|p| p[0] != b"large" && content(&r.model, p) > q / 4)
        .map(|p| (p.clone(), q / 8 + rng.below(7 * q as u64 / 8) as usize))
        .collect();
    for _ in 0..2 + rng.below(3) {
        r.tx(&mut rng, "shrink", 10, |tx, w, rng| {
            for (p, t) in &targets {
                if w.contains_key(p) && rng.chance(80) {
                    let step = page / 32 + rng.below(page as u64 / 8) as usize;
                    let to = (*t).max(content(w, p).saturating_sub(step));
                    shrink(tx, w, p, to, rng, seed);
                }
            }
        });
    }
    r.reopen(&format!("seed {seed}: after shrinking"));
    // A transaction whose only change is a small bucket's sequence, or one key in it.
    for _ in 0..3 {
        let leaves = r.leaves();
        if leaves.is_empty() {
            break;
        }
        let p = pick(&mut rng, &leaves).clone();
        r.tx(&mut rng, "one change", 10, |tx, w, rng| {
            match rng.below(4) {
                0 | 1 => do_sequence(tx, w, &p, rng, seed),
                2 => do_put(tx, w, &p, small_key(rng), small_value(rng), seed),
                _ => {
                    let k = w[&p]
                        .kv
                        .keys()
                        .next()
                        .cloned()
                        .unwrap_or_else(|| small_key(rng));
                    do_delete(tx, w, &p, &k, seed);
                }
            }
        });
    }
    // Deleting buckets: small ones, the large one, a bucket with children; a deleted name
    // created again in the same transaction.
    r.tx(&mut rng, "delete buckets", 10, |tx, w, rng| {
        let paths: Vec<Path> = w.keys().cloned().collect();
        for _ in 0..4 {
            let p = pick(rng, &paths);
            if w.contains_key(p) {
                do_delete_bucket(tx, w, p, seed);
            }
        }
        let large = vec![b"large".to_vec()];
        if w.contains_key(&large) && rng.chance(70) {
            do_delete_bucket(tx, w, &large, seed);
        }
        let leaves: Vec<Path> = w.keys().filter(|p| p.len() > 1).cloned().collect();
        if !leaves.is_empty() {
            let p = pick(rng, &leaves).clone();
            do_delete_bucket(tx, w, &p, seed);
            let (name, parent) = p.split_last().unwrap();
            let p = do_create(tx, w, &parent.to_vec(), name, seed).unwrap();
            do_put(tx, w, &p, small_key(rng), small_value(rng), seed);
        }
    });
    let db = r.db.take().unwrap();
    delete_all(&db, seed);
}

#[test]
fn model_random_operations() {
    for_seeds("model model_random_operations", 0..300, run);
}

#[test]
fn model_inline_buckets() {
    for_seeds("model model_inline_buckets", 0..100, run_inline);
}
