//! Salvage: damage known pages of a known database and check that the report and the
//! recovered content match exactly what should survive.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use common::format::*;
use deadbolt::{salvage, salvage_storage, Db, Error, MemStorage, Options};

const P: usize = 1024;

fn build() -> (Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>) {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(
        s.clone(),
        Options {
            page_size: P,
            ..Options::default()
        },
    )
    .unwrap();
    let mut model = BTreeMap::new();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        b.set_sequence(99)?;
        for i in 0..2000u32 {
            let (k, v) = (
                format!("key-{i:05}").into_bytes(),
                format!("value-{i}").into_bytes(),
            );
            b.put(&k, &v)?;
            model.insert(k, v);
        }
        let n = b.create_bucket(b"n")?;
        for i in 0..50u32 {
            n.put(&i.to_be_bytes(), b"nested")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| tx.create_bucket(b"later").map(|_| ()))
        .unwrap();
    drop(db);
    (s.to_bytes(), model)
}

fn salvage_img(img: Vec<u8>) -> (deadbolt::SalvageReport, Db) {
    let dst = Db::in_memory().unwrap();
    let rep = salvage_storage(Arc::new(MemStorage::from_bytes(img)), &dst).unwrap();
    (rep, dst)
}

fn keys_of(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        b.iter()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<BTreeMap<_, _>, _>>()
    })
    .unwrap()
}

#[test]
fn healthy_file_salvages_completely() {
    let (img, model) = build();
    let (rep, dst) = salvage_img(img);
    assert!(rep.is_complete(), "{rep}");
    assert_eq!(keys_of(&dst), model);
    assert_eq!(rep.keys, 2050);
    dst.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.sequence(), 99);
        assert_eq!(b.bucket(b"n")?.unwrap().iter().count(), 50);
        assert!(tx.bucket(b"later")?.is_some());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn damaged_leaf_loses_exactly_its_range() {
    let (mut img, model) = build();
    let m = newest_meta(&img, P);
    let (hdr, _) = top_bucket_header(&img, P, &m, b"b");
    let root = ref_at(&img, hdr);
    assert_eq!(page_type(&img, P, root.pgid), 2);
    // Walk down the middle child to a leaf, remembering the key bounds.
    let mut pg = root.pgid;
    let (mut lo, mut hi): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    while page_type(&img, P, pg) == 2 {
        let n = count(&img, P, pg);
        let i = n / 2;
        let key = |j: usize| {
            let e = branch_elem(P, pg, j);
            let (ko, kl) = (u32_at(&img, e + 20) as usize, u32_at(&img, e + 24) as usize);
            img[pg as usize * P + ko..pg as usize * P + ko + kl].to_vec()
        };
        if i > 0 {
            lo = Some(key(i));
        }
        if i + 1 < n {
            hi = Some(key(i + 1));
        }
        pg = u64_at(&img, branch_elem(P, pg, i));
    }
    // Damage that leaf (one bit).
    img[pg as usize * P + 200] ^= 0x40;
    let (rep, dst) = salvage_img(img);
    assert_eq!(rep.lost.len(), 1, "{rep}");
    let l = &rep.lost[0];
    assert_eq!(l.path, vec![b"b".to_vec()]);
    assert_eq!(l.page, pg);
    let (from, to) = (
        lo.clone().map_or(Bound::Unbounded, Bound::Included),
        hi.clone().map_or(Bound::Unbounded, Bound::Excluded),
    );
    assert_eq!((&l.from, &l.to), (&from, &to));
    let want: BTreeMap<Vec<u8>, Vec<u8>> = model
        .into_iter()
        .filter(|(k, _)| {
            !(lo.as_ref().is_none_or(|lo| k >= lo) && hi.as_ref().is_none_or(|hi| k < hi))
        })
        .collect();
    let got = keys_of(&dst);
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "recovered content differs from the original minus the lost range"
    );
    assert!(want.len() < 2000, "the lost range held keys");
}

#[test]
fn damaged_nested_bucket_root_loses_that_bucket_only() {
    let (mut img, model) = build();
    let m = newest_meta(&img, P);
    // Find the nested bucket "n": a bucket element in some leaf of "b".
    let (_, par) = parents(&img, P);
    // The only span referenced from a leaf that is not the root bucket's leaf is "n"'s root.
    let roots: Vec<u64> = par
        .iter()
        .filter(|(_, &(_, holder))| {
            holder >= 2 && holder != m.root.pgid && page_type(&img, P, holder) == 3
        })
        .map(|(&pg, _)| pg)
        .collect();
    assert_eq!(roots.len(), 1);
    let n_root = roots[0];
    img[n_root as usize * P + 300] ^= 1;
    let (rep, dst) = salvage_img(img);
    assert_eq!(rep.lost.len(), 1, "{rep}");
    assert_eq!(rep.lost[0].path, vec![b"b".to_vec(), b"n".to_vec()]);
    assert_eq!(
        (&rep.lost[0].from, &rep.lost[0].to),
        (&Bound::Unbounded, &Bound::Unbounded)
    );
    assert_eq!(keys_of(&dst), model, "the parent bucket is whole");
}

#[test]
fn salvage_never_writes_the_source_and_refuses_a_full_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (mut img, _) = build();
    img[5 * P + 100] ^= 0xff;
    let src = dir.path().join("src.db");
    std::fs::write(&src, &img).unwrap();
    let rep = salvage(&src, &dir.path().join("out.db")).unwrap();
    assert!(rep.keys > 0);
    assert_eq!(std::fs::read(&src).unwrap(), img, "source unchanged");
    assert!(
        salvage(&src, &dir.path().join("out.db")).is_err(),
        "destination not empty"
    );
    let out = Db::open(dir.path().join("out.db")).unwrap();
    assert!(out.check().unwrap().is_ok());
}
