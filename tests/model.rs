//! Model-based randomized test: every operation is applied to deadbolt and to a `BTreeMap`
//! model; after every commit, rollback and reopen the whole database must equal the model and
//! pass the integrity check. Replay a failing seed with `DEADBOLT_SEED=N`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{for_seeds, Rng};
use deadbolt::{Bucket, Db, Error, MemStorage, Options, Tx};

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

fn verify(db: &Db, model: &Model, seed: u64) {
    db.view(|tx| {
        // Top-level names.
        let top: Vec<Vec<u8>> = tx.buckets().map(|r| r.unwrap().to_vec()).collect();
        assert_eq!(
            top,
            children(model, &vec![]),
            "seed {seed}: top-level buckets"
        );
        for (path, bm) in model.iter() {
            let b = resolve(tx, path);
            assert_eq!(b.sequence(), bm.seq, "seed {seed}: sequence of {path:?}");
            let got: Vec<(Vec<u8>, Vec<u8>)> = b
                .iter()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                bm.kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(got.len(), want.len(), "seed {seed}: count in {path:?}");
            assert!(got == want, "seed {seed}: contents of {path:?}");
            let mut back: Vec<(Vec<u8>, Vec<u8>)> = b
                .iter()
                .rev()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.to_vec(), v.to_vec())
                })
                .collect();
            back.reverse();
            assert!(back == want, "seed {seed}: reverse contents of {path:?}");
            let names: Vec<Vec<u8>> = b.buckets().map(|r| r.unwrap().to_vec()).collect();
            assert_eq!(
                names,
                children(model, path),
                "seed {seed}: nested buckets of {path:?}"
            );
            // Point reads and a range.
            for (k, v) in bm.kv.iter().take(5) {
                assert_eq!(b.get(k).unwrap().as_deref(), Some(v.as_slice()));
            }
            if let (Some(lo), Some(hi)) = (bm.kv.keys().nth(1), bm.kv.keys().nth(7)) {
                let got: Vec<Vec<u8>> = b
                    .range(lo.as_slice()..hi.as_slice())
                    .map(|r| r.unwrap().0.to_vec())
                    .collect();
                let want: Vec<Vec<u8>> = bm
                    .kv
                    .range(lo.clone()..hi.clone())
                    .map(|(k, _)| k.clone())
                    .collect();
                assert_eq!(got, want, "seed {seed}: range in {path:?}");
                let got: Vec<Vec<u8>> = b
                    .range(lo.as_slice()..=hi.as_slice())
                    .rev()
                    .map(|r| r.unwrap().0.to_vec())
                    .collect();
                let mut want: Vec<Vec<u8>> = bm
                    .kv
                    .range(lo.clone()..=hi.clone())
                    .map(|(k, _)| k.clone())
                    .collect();
                want.reverse();
                assert_eq!(
                    got, want,
                    "seed {seed}: reverse inclusive range in {path:?}"
                );
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let report = db.check().unwrap();
    assert!(report.is_ok(), "seed {seed}: check failed:\n{report}");
}

fn run(seed: u64) {
    let mut rng = Rng::new(seed);
    let page_size = [1024usize, 4096, 4096, 16384][rng.below(4) as usize];
    let storage = Arc::new(MemStorage::new());
    let opts = Options {
        page_size,
        ..Options::default()
    };
    let mut db = Db::open_storage(storage.clone(), opts.clone()).unwrap();
    let mut model: Model = BTreeMap::new();
    let txs = 25;
    for _t in 0..txs {
        let mut work = model.clone();
        let mut tx = db.begin_write().unwrap();
        let big = rng.chance(10);
        let nops = 1 + rng.below(if big { 600 } else { 60 });
        for _ in 0..nops {
            let paths: Vec<Path> = work.keys().cloned().collect();
            let op = rng.below(100);
            if std::env::var("DEADBOLT_TRACE").is_ok() {
                eprintln!("op {op}");
            }
            if paths.is_empty() || op < 6 {
                // Create a bucket, top-level or nested.
                let parent: Path = if paths.is_empty() || rng.chance(40) {
                    vec![]
                } else {
                    paths[rng.below(paths.len() as u64) as usize].clone()
                };
                let name = format!("b{}", rng.below(6)).into_bytes();
                let mut p = parent.clone();
                p.push(name.clone());
                let r = if parent.is_empty() {
                    tx.create_bucket(&name).map(|_| ())
                } else {
                    resolve(&tx, &parent).create_bucket(&name).map(|_| ())
                };
                let is_key = !parent.is_empty() && work[&parent].kv.contains_key(&name);
                match r {
                    Ok(()) => {
                        assert!(
                            !work.contains_key(&p) && !is_key,
                            "seed {seed}: created an existing name"
                        );
                        work.insert(p, BModel::default());
                    }
                    Err(Error::BucketExists) => assert!(work.contains_key(&p)),
                    Err(Error::IncompatibleValue) => assert!(is_key),
                    Err(e) => panic!("seed {seed}: create_bucket: {e}"),
                }
                continue;
            }
            let path = paths[rng.below(paths.len() as u64) as usize].clone();
            let b = resolve(&tx, &path);
            match op {
                6..=8 => {
                    // Delete a bucket (and everything under it).
                    let r = if path.len() == 1 {
                        tx.delete_bucket(&path[0])
                    } else {
                        resolve(&tx, &path[..path.len() - 1].to_vec())
                            .delete_bucket(path.last().unwrap())
                    };
                    r.unwrap();
                    work.retain(|p, _| !p.starts_with(&path));
                }
                9 => {
                    let v = rng.next_u64() >> rng.below(64);
                    b.set_sequence(v).unwrap();
                    work.get_mut(&path).unwrap().seq = v;
                }
                10 => {
                    let bm = work.get_mut(&path).unwrap();
                    if bm.seq < u64::MAX {
                        assert_eq!(b.next_sequence().unwrap(), bm.seq + 1);
                        bm.seq += 1;
                    }
                }
                11..=13 => {
                    // Delete many keys through a cursor.
                    let mut c = b.cursor();
                    let start = key(&mut rng);
                    let mut e = c.seek(&start).unwrap();
                    let n = rng.below(40);
                    for _ in 0..n {
                        let Some(en) = e else { break };
                        if en.value.is_some() {
                            let k = en.key.to_vec();
                            c.delete().unwrap();
                            work.get_mut(&path).unwrap().kv.remove(&k);
                        }
                        e = c.next().unwrap();
                    }
                }
                14..=30 => {
                    let k = key(&mut rng);
                    let is_bucket = work.contains_key(&[path.clone(), vec![k.clone()]].concat());
                    match b.delete(&k) {
                        Ok(()) => {
                            assert!(!is_bucket);
                            work.get_mut(&path).unwrap().kv.remove(&k);
                        }
                        Err(Error::IncompatibleValue) => assert!(is_bucket),
                        Err(e) => panic!("seed {seed}: delete: {e}"),
                    }
                }
                31..=35 => {
                    // Delete everything in the bucket.
                    let keys: Vec<Vec<u8>> = work[&path].kv.keys().cloned().collect();
                    for k in keys {
                        b.delete(&k).unwrap();
                    }
                    work.get_mut(&path).unwrap().kv.clear();
                }
                _ => {
                    let k = key(&mut rng);
                    let v = value(&mut rng, page_size);
                    let is_bucket = work.contains_key(&[path.clone(), vec![k.clone()]].concat());
                    match b.put(&k, &v) {
                        Ok(()) => {
                            assert!(!is_bucket);
                            work.get_mut(&path).unwrap().kv.insert(k, v);
                        }
                        Err(Error::IncompatibleValue) => assert!(is_bucket),
                        Err(e) => panic!("seed {seed}: put: {e}"),
                    }
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
        if std::env::var("DEADBOLT_TRACE").is_ok() {
            eprintln!("end of tx; stats {:?}", db.stats());
        }
        if rng.chance(15) {
            tx.rollback();
        } else {
            tx.commit().unwrap();
            model = work;
        }
        if std::env::var("DEADBOLT_TRACE").is_ok() {
            eprintln!(
                "after commit/rollback: {:?}\n{}",
                db.stats(),
                db.check().unwrap()
            );
        }
        verify(&db, &model, seed);
        if rng.chance(20) {
            drop(db);
            db = Db::open_storage(storage.clone(), opts.clone()).unwrap();
            if std::env::var("DEADBOLT_TRACE").is_ok() {
                eprintln!("reopened");
            }
            assert!(
                db.recovery().rolled_back.is_none(),
                "seed {seed}: clean reopen rolled back"
            );
            verify(&db, &model, seed);
        }
    }
    // Delete everything: the file's pages return to (almost) nothing.
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

#[test]
fn model_random_operations() {
    for_seeds("model", 0..300, run);
}
