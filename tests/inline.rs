//! Inline buckets (docs/FORMAT.md, section 5): a nested bucket whose whole tree is one leaf of
//! at most a quarter page, with no bucket nested in it, lives inside its parent's leaf. It
//! moves out to a page of its own when it grows past that and back in when it shrinks, and
//! its bytes are hostile like any page's: every forgery below is corruption, never a panic or a
//! wrong value.

mod common;

use std::sync::Arc;

use common::format::*;
use deadbolt::{CheckReport, Db, Error, MemStorage, Options};

const P: usize = 1024;

fn opts() -> Options {
    Options {
        page_size: P,
        confirm_after: None,
        ..Options::default()
    }
}

fn open(s: &Arc<MemStorage>) -> Db {
    Db::open_storage(s.clone(), opts()).unwrap()
}

/// Close `db`, open `s` again and check it: the new handle and its (clean) report.
fn reopen_checked(db: Db, s: &Arc<MemStorage>) -> (Db, CheckReport) {
    drop(db);
    let db = open(s);
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    (db, report)
}

/// Inline bucket count and leaf pages of the root bucket's statistics (nested included).
fn inline_and_leaves(db: &Db) -> (u64, u64) {
    db.view(|tx| {
        let mut inline = 0;
        let mut leaves = 0;
        for name in tx.buckets() {
            let st = tx.bucket(&name?)?.unwrap().stats()?;
            inline += st.inline_buckets;
            leaves += st.leaf_pages;
        }
        Ok::<_, Error>((inline, leaves))
    })
    .unwrap()
}

#[test]
fn small_buckets_live_in_their_parents_leaf_and_read_back_after_reopen() {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    db.update(|tx| {
        let ns = tx.create_bucket(b"ns")?;
        for i in 0..200u32 {
            let b = ns.create_bucket(format!("obj-{i:04}").as_bytes())?;
            b.put(b"kind", b"container")?;
            b.put(b"id", &i.to_be_bytes())?;
            b.set_sequence(u64::from(i) * 3)?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let hwm = db.stats().high_water;
    drop(db);
    let db = open(&s);
    assert!(db.check().unwrap().is_ok());
    let report = db.check().unwrap();
    assert_eq!(report.inline_buckets, 200);
    // 200 buckets of ~110 bytes each (name, element, value) fit in a few dozen 1 KiB pages;
    // with a page each they needed more than 200.
    assert!(
        hwm < 60,
        "high-water mark {hwm} pages for 200 small buckets"
    );
    db.view(|tx| {
        let ns = tx.bucket(b"ns")?.unwrap();
        let st = ns.stats()?;
        assert_eq!((st.buckets, st.inline_buckets, st.keys), (200, 200, 400));
        for i in 0..200u32 {
            let b = ns.bucket(format!("obj-{i:04}").as_bytes())?.unwrap();
            assert_eq!(b.get(b"kind")?.as_deref(), Some(&b"container"[..]));
            assert_eq!(b.get(b"id")?.as_deref(), Some(&i.to_be_bytes()[..]));
            assert_eq!(b.get(b"nope")?, None);
            assert_eq!(b.sequence(), u64::from(i) * 3);
        }
        // Cursors and iterators over an inline bucket, both ways.
        let b = ns.bucket(b"obj-0007")?.unwrap();
        let fwd: Vec<Vec<u8>> = b.iter().map(|kv| kv.unwrap().0.to_vec()).collect();
        let back: Vec<Vec<u8>> = b.iter().rev().map(|kv| kv.unwrap().0.to_vec()).collect();
        assert_eq!(fwd, [b"id".to_vec(), b"kind".to_vec()]);
        assert_eq!(back, [b"kind".to_vec(), b"id".to_vec()]);
        let mut c = b.cursor();
        assert_eq!(c.seek(b"j")?.unwrap().key.as_ref(), b"kind");
        assert_eq!(c.prev()?.unwrap().key.as_ref(), b"id");
        assert!(c.prev()?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_bucket_moves_out_when_it_grows_and_back_in_when_it_shrinks() {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    let put_n = |db: &Db, n: u32| {
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"top")?;
            let c = b.create_bucket_if_not_exists(b"child")?;
            for i in 0..n {
                c.put(format!("key-{i:03}").as_bytes(), b"0123456789")?;
            }
            Ok::<_, Error>(())
        })
        .unwrap()
    };
    put_n(&db, 3);
    assert_eq!(
        inline_and_leaves(&db),
        (2, 0),
        "child inline in top, and top (a small bucket of inline buckets) inline too"
    );
    // 3 + 27 pairs of 33 bytes: well past a quarter of a 1 KiB page.
    put_n(&db, 30);
    drop(db);
    let db = open(&s);
    assert_eq!(
        inline_and_leaves(&db).0,
        0,
        "child moved out to a page of its own"
    );
    assert!(db.check().unwrap().is_ok());
    db.update(|tx| {
        let c = tx.bucket(b"top")?.unwrap().bucket(b"child")?.unwrap();
        for i in 2..30u32 {
            c.delete(format!("key-{i:03}").as_bytes())?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(db);
    let db = open(&s);
    assert_eq!(
        inline_and_leaves(&db),
        (2, 0),
        "child moved back in, and top with it"
    );
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    let keys: Vec<Vec<u8>> = db
        .view(|tx| {
            let c = tx.bucket(b"top")?.unwrap().bucket(b"child")?.unwrap();
            c.iter().map(|kv| kv.map(|(k, _)| k.to_vec())).collect()
        })
        .unwrap();
    assert_eq!(keys, [b"key-000".to_vec(), b"key-001".to_vec()]);
}

#[test]
fn a_small_bucket_of_inline_buckets_is_inline_until_one_of_them_needs_a_page() {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    db.update(|tx| {
        let o = tx.create_bucket(b"ns")?.create_bucket(b"obj")?;
        o.put(b"a", b"1")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    // "obj" inline in "ns", and "ns", holding only that, inline in the root's leaf.
    assert_eq!(inline_and_leaves(&db), (2, 0));
    db.update(|tx| {
        let o = tx.bucket(b"ns")?.unwrap().bucket(b"obj")?.unwrap();
        o.next_sequence()?;
        o.create_bucket(b"labels")?.put(b"env", b"prod")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(db);
    let db = open(&s);
    // Format 6: "labels" is inline inside "obj", inside "ns" (before, a bucket holding a
    // bucket always had a page of its own).
    assert_eq!(inline_and_leaves(&db), (3, 0));
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.inline_buckets, 3);
    db.view(|tx| {
        let o = tx.bucket(b"ns")?.unwrap().bucket(b"obj")?.unwrap();
        assert_eq!(o.sequence(), 1);
        let l = o.bucket(b"labels")?.unwrap();
        assert_eq!(l.get(b"env")?.as_deref(), Some(&b"prod"[..]));
        Ok::<_, Error>(())
    })
    .unwrap();
    // "labels" outgrows the inline limit: it gets pages, and "obj", which now points at them,
    // a page too.
    db.update(|tx| {
        let o = tx.bucket(b"ns")?.unwrap().bucket(b"obj")?.unwrap();
        let l = o.bucket(b"labels")?.unwrap();
        for i in 0..40u32 {
            l.put(format!("label-{i:03}").as_bytes(), b"0123456789")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(db);
    let db = open(&s);
    let (inline, leaves) = inline_and_leaves(&db);
    assert_eq!(inline, 0, "nothing inline once labels has pages");
    assert!(
        leaves >= 3,
        "ns, obj and labels each on pages ({leaves} leaves)"
    );
    assert!(db.check().unwrap().is_ok());
    db.update(|tx| {
        let o = tx.bucket(b"ns")?.unwrap().bucket(b"obj")?.unwrap();
        o.delete_bucket(b"labels")
    })
    .unwrap();
    drop(db);
    let db = open(&s);
    assert_eq!(inline_and_leaves(&db), (2, 0), "obj and ns back inline");
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    db.view(|tx| {
        let o = tx.bucket(b"ns")?.unwrap().bucket(b"obj")?.unwrap();
        assert_eq!(o.sequence(), 1);
        assert_eq!(o.get(b"a")?.as_deref(), Some(&b"1"[..]));
        assert!(o.bucket(b"labels")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Buckets nested `depth` deep under "top", each holding one pair.
fn chain(db: &Db, depth: usize) {
    db.update(|tx| {
        let mut b = tx.create_bucket(b"top")?;
        for d in 0..depth {
            b.put(b"k", format!("level {d}").as_bytes())?;
            b = b.create_bucket(b"n")?;
        }
        b.put(b"k", b"bottom")?;
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn inline_buckets_nest_at_most_max_inline_depth_deep_and_deeper_chains_take_pages() {
    // 4 KiB pages: a chain of MAX_INLINE_DEPTH small buckets fits in one inline value.
    let opts = Options {
        page_size: 4096,
        ..opts()
    };
    for depth in [1, 3, 6, 10] {
        let s = Arc::new(MemStorage::new());
        let db = Db::open_storage(s.clone(), opts.clone()).unwrap();
        chain(&db, depth);
        drop(db);
        let db = Db::open_storage(s.clone(), opts.clone()).unwrap();
        let report = db.check().unwrap();
        assert!(report.is_ok(), "depth {depth}: {report}");
        // "top" and the depth buckets under it: all small, so inline as far as the bound lets
        // them (the deepest MAX_INLINE_DEPTH of the chain; the ones above have pages).
        let want = (depth + 1).min(deadbolt::MAX_INLINE_DEPTH) as u64;
        assert_eq!(report.inline_buckets, want, "depth {depth}");
        db.view(|tx| {
            let mut b = tx.bucket(b"top")?.unwrap();
            for d in 0..depth {
                assert_eq!(
                    b.get(b"k")?.unwrap().as_ref(),
                    format!("level {d}").as_bytes()
                );
                b = b.bucket(b"n")?.unwrap();
            }
            assert_eq!(b.get(b"k")?.unwrap().as_ref(), b"bottom");
            Ok::<_, Error>(())
        })
        .unwrap();
    }
}

#[test]
fn deleting_inline_buckets_and_cursor_deletes_inside_them_leak_no_page() {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    db.update(|tx| {
        let ns = tx.create_bucket(b"ns")?;
        for i in 0..50u32 {
            let b = ns.create_bucket(format!("o{i:02}").as_bytes())?;
            b.put(b"x", b"1")?;
            b.put(b"y", b"2")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| {
        let ns = tx.bucket(b"ns")?.unwrap();
        for i in (0..50u32).step_by(2) {
            ns.delete_bucket(format!("o{i:02}").as_bytes())?;
        }
        let b = ns.bucket(b"o01")?.unwrap();
        let mut c = b.cursor();
        c.first()?;
        c.delete()?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let (db, report) = reopen_checked(db, &s);
    assert_eq!(report.inline_buckets, 25);
    db.view(|tx| {
        let ns = tx.bucket(b"ns")?.unwrap();
        assert_eq!(ns.buckets().count(), 25);
        let b = ns.bucket(b"o01")?.unwrap();
        assert_eq!(b.get(b"x")?, None);
        assert_eq!(b.get(b"y")?.as_deref(), Some(&b"2"[..]));
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Pins the shortcut `delete_bucket` takes for an inline bucket nobody opened (it removes the
/// element without opening the bucket): the bucket and what is nested in it are gone, a bucket
/// created under the same name in the same transaction starts empty, and an inline bucket that
/// was opened, with one nested in it opened too, still has both handles closed by the delete.
#[test]
fn deleting_an_inline_bucket_without_opening_it_leaves_nothing_of_it_behind() {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    db.update(|tx| {
        let ns = tx.create_bucket(b"ns")?;
        for name in [&b"a"[..], b"b"] {
            let o = ns.create_bucket(name)?;
            o.put(b"f", b"1")?;
            o.create_bucket(b"labels")?.put(b"env", b"prod")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(db);
    let db = open(&s);
    assert_eq!(
        inline_and_leaves(&db).0,
        5,
        "ns, a, b and their labels inline"
    );
    db.update(|tx| {
        let ns = tx.bucket(b"ns")?.unwrap();
        // "a": not opened in this transaction.
        ns.delete_bucket(b"a")?;
        assert!(ns.bucket(b"a")?.is_none());
        assert!(matches!(ns.delete_bucket(b"a"), Err(Error::BucketNotFound)));
        let again = ns.create_bucket(b"a")?;
        assert_eq!(again.get(b"f")?, None);
        assert!(again.bucket(b"labels")?.is_none());
        // "b": opened, and its labels too, before the delete.
        let b = ns.bucket(b"b")?.unwrap();
        let labels = b.bucket(b"labels")?.unwrap();
        ns.delete_bucket(b"b")?;
        assert!(matches!(b.get(b"f"), Err(Error::BucketNotFound)));
        assert!(matches!(labels.get(b"env"), Err(Error::BucketNotFound)));
        assert!(matches!(
            labels.put(b"env", b"dev"),
            Err(Error::BucketNotFound)
        ));
        Ok::<_, Error>(())
    })
    .unwrap();
    let (db, _) = reopen_checked(db, &s);
    db.view(|tx| {
        let ns = tx.bucket(b"ns")?.unwrap();
        let names: Vec<_> = ns.buckets().collect::<Result<_, _>>()?;
        assert_eq!(names, vec![&b"a"[..]]);
        let a = ns.bucket(b"a")?.unwrap();
        assert_eq!(a.get(b"f")?, None);
        assert!(a.bucket(b"labels")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn compaction_and_backup_keep_small_buckets_inline() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("a.db"), opts()).unwrap();
    db.update(|tx| {
        let ns = tx.create_bucket(b"ns")?;
        for i in 0..300u32 {
            ns.create_bucket(format!("o{i:03}").as_bytes())?
                .put(b"k", b"v")?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.compact_into(dir.path().join("c.db")).unwrap();
    db.backup(dir.path().join("b.db")).unwrap();
    for name in ["c.db", "b.db"] {
        let copy = Db::open_with(dir.path().join(name), opts()).unwrap();
        let report = copy.check().unwrap();
        assert!(report.is_ok(), "{name}: {report}");
        assert_eq!(report.inline_buckets, 300, "{name}");
    }
}

// ---- hostile bytes inside an inline bucket ------------------------------------------------

/// An image whose root bucket "ns" is one leaf holding inline buckets `o0`..`o3` (two pairs
/// each) and a plain pair `big` with a large value; returns it with the page of that leaf. If
/// `image`, the file is made a version-6 one first: the leaf's inline buckets rewritten as the
/// page images versions 3 to 6 wrote (the forgeries below cover both encodings).
fn inline_image(image: bool) -> (Vec<u8>, u64) {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    db.update(|tx| {
        let ns = tx.create_bucket(b"ns")?;
        for i in 0..4u32 {
            let b = ns.create_bucket(format!("o{i}").as_bytes())?;
            b.put(b"a", b"first")?;
            b.put(b"b", b"second")?;
        }
        ns.put(b"big", &[7u8; 200])?;
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(db);
    let mut img = s.to_bytes();
    let (_, parents) = parents(&img, P);
    let leaf = leaf_holding_o0(&img, &parents);
    if image {
        leaf_as_version_6(&mut img, P, leaf);
        reseal_chain(&mut img, P, leaf, &parents);
        set_version(&mut img, P, 6);
    }
    (img, leaf)
}

/// Element `name` of leaf `pg`: (element offset, value range).
fn element(img: &[u8], pg: u64, name: &[u8]) -> (usize, std::ops::Range<usize>) {
    for i in 0..count(img, P, pg) {
        let (_, k, v) = leaf_elem(img, P, pg, i);
        if &img[k] == name {
            return (pg as usize * P + 32 + 16 * i, v);
        }
    }
    panic!("no element {name:?}")
}

/// Inline bucket `name` of leaf `pg`: where its value starts and its decoded layout.
fn inline_at(img: &[u8], pg: u64, name: &[u8]) -> (usize, Inline) {
    let (_, v) = element(img, pg, name);
    let ib = inline_bucket(&img[v.clone()]);
    (v.start, ib)
}

/// Apply `mutate` to the image (of page images if `image`), reseal every checksum up to the
/// meta (the forgery verifies), and require that opening, checking and reading all give
/// `Corruption` naming the leaf, or correct data.
fn forged_in(what: &str, image: bool, mutate: impl Fn(&mut Vec<u8>, u64)) {
    let (mut img, leaf) = inline_image(image);
    let (_, parents) = parents(&img, P);
    mutate(&mut img, leaf);
    reseal_chain(&mut img, P, leaf, &parents);
    let s = Arc::new(MemStorage::from_bytes(img));
    let db = match Db::open_storage(s, opts()) {
        Err(Error::Corruption { page, .. }) => {
            assert_eq!(page, leaf, "{what}: open names the leaf");
            return;
        }
        Err(e) => panic!("{what}: open failed with {e}, not corruption"),
        Ok(db) => db,
    };
    let report = db.check().unwrap();
    assert!(!report.is_ok(), "{what}: check found nothing");
    let read = db.view(|tx| {
        let ns = tx.bucket(b"ns")?.unwrap();
        for i in 0..4u32 {
            let b = ns.bucket(format!("o{i}").as_bytes())?.unwrap();
            assert_eq!(b.get(b"a")?.as_deref(), Some(&b"first"[..]), "{what}");
            for kv in b.iter() {
                kv?;
            }
        }
        Ok::<_, Error>(())
    });
    match read {
        Err(Error::Corruption { page, .. }) => {
            assert_eq!(page, leaf, "{what}: read names the leaf")
        }
        _ => panic!("{what}: read gave {read:?}"),
    }
}

/// [`forged_in`] over a version-6 file's page images.
fn forged(what: &str, mutate: impl Fn(&mut Vec<u8>, u64)) {
    forged_in(what, true, mutate)
}

/// [`forged_in`] over the compact inline buckets of version 7.
fn forged_compact(what: &str, mutate: impl Fn(&mut Vec<u8>, u64)) {
    forged_in(what, false, mutate)
}

#[test]
fn a_forged_element_count_inside_an_inline_bucket_is_corruption() {
    forged("count", |img, leaf| {
        let (_, v) = element(img, leaf, b"o1");
        let word = u32_at(img, v.start + 4) & 0xffff | (500 << 16);
        put_u32(img, v.start + 4, word);
    });
}

#[test]
fn a_key_offset_outside_an_inline_bucket_is_corruption() {
    forged("key offset", |img, leaf| {
        let (_, v) = element(img, leaf, b"o2");
        put_u32(img, v.start + 32 + 4, 4000);
    });
}

#[test]
fn a_nested_bucket_flag_inside_an_inline_bucket_is_corruption() {
    forged("nested flag", |img, leaf| {
        let (_, v) = element(img, leaf, b"o0");
        img[v.start + 32] = 1;
    });
}

#[test]
fn an_inline_header_claiming_a_branch_is_corruption() {
    forged("branch header", |img, leaf| {
        let (_, v) = element(img, leaf, b"o3");
        img[v.start + 4] = 2;
    });
}

#[test]
fn inline_keys_out_of_order_are_corruption() {
    forged("order", |img, leaf| {
        let (_, v) = element(img, leaf, b"o1");
        let (k0, k1) = (v.start + u32_at(img, v.start + 32 + 4) as usize, v.start);
        let k1 = k1 + u32_at(img, v.start + 48 + 4) as usize;
        img.swap(k0, k1);
    });
}

#[test]
fn a_forged_bucket_flag_on_a_large_plain_value_is_corruption() {
    forged("bucket flag on a value", |img, leaf| {
        let (at, _) = element(img, leaf, b"big");
        img[at] = 1;
    });
    forged_compact("bucket flag on a value", |img, leaf| {
        let (at, _) = element(img, leaf, b"big");
        img[at] = 1;
    });
}

#[test]
fn a_forged_count_inside_a_compact_inline_bucket_is_corruption() {
    for c in [0u16, 3, 500, u16::MAX] {
        forged_compact(&format!("count {c}"), |img, leaf| {
            let (v, _) = inline_at(img, leaf, b"o1");
            img[v + 1..v + 3].copy_from_slice(&c.to_le_bytes());
        });
    }
}

#[test]
fn unknown_flags_on_a_compact_inline_bucket_are_corruption() {
    for b in [0x82u8, 0xc0, 0xff, 0x81] {
        forged_compact(&format!("first byte {b:#x}"), |img, leaf| {
            let (v, _) = inline_at(img, leaf, b"o3");
            img[v] = b;
        });
    }
}

#[test]
fn a_compact_inline_bucket_whose_key_overlaps_its_element_array_is_corruption() {
    forged_compact("key inside the elements", |img, leaf| {
        let (v, ib) = inline_at(img, leaf, b"o2");
        let e = v + ib.elems[0].elem.start;
        img[e..e + 2].copy_from_slice(&(ib.elems_at as u16).to_le_bytes());
    });
}

#[test]
fn a_compact_inline_bucket_with_a_gap_or_an_overlap_between_its_keys_is_corruption() {
    for (d, what) in [(1i32, "gap"), (-1, "overlap")] {
        forged_compact(what, |img, leaf| {
            let (v, ib) = inline_at(img, leaf, b"o2");
            let e = v + ib.elems[1].elem.start;
            let ko = (ib.elems[1].key.start as i32 + d) as u16;
            img[e..e + 2].copy_from_slice(&ko.to_le_bytes());
        });
    }
}

#[test]
fn a_compact_inline_value_or_key_running_past_its_bucket_is_corruption() {
    for (field, x) in [(0usize, 4000u16), (2, 300), (4, 0x7fff), (4, 7)] {
        forged_compact(&format!("field {field} = {x}"), |img, leaf| {
            let (v, ib) = inline_at(img, leaf, b"o0");
            let e = v + ib.elems[1].elem.start + field;
            img[e..e + 2].copy_from_slice(&x.to_le_bytes());
        });
    }
}

#[test]
fn a_nested_bucket_flag_inside_a_compact_inline_bucket_is_corruption() {
    forged_compact("nested flag", |img, leaf| {
        let (v, ib) = inline_at(img, leaf, b"o0");
        img[v + ib.elems[0].elem.start + 5] |= 0x80;
    });
}

#[test]
fn compact_inline_keys_out_of_order_are_corruption() {
    forged_compact("order", |img, leaf| {
        let (v, ib) = inline_at(img, leaf, b"o1");
        img.swap(v + ib.elems[0].key.start, v + ib.elems[1].key.start);
    });
}

/// A version-6 file (inline buckets as page images, written here by the independent writer of
/// tests/common/format.rs) opens, reads and checks as it is; its next commit makes it version
/// 7, the buckets that commit wrote are compact and the untouched ones stay page images, and
/// the file reads back (and salvages) whole.
#[test]
fn a_version_6_file_of_page_image_inline_buckets_opens_reads_takes_writes_and_then_holds_both() {
    let (img, leaf) = inline_image(true);
    let versions = |img: &[u8]| (u32_at(img, 40), u32_at(img, P + 40));
    assert_eq!(versions(&img), (6, 6));
    let encodings = |img: &[u8], leaf: u64| -> Vec<(Vec<u8>, bool)> {
        (0..4)
            .map(|i| {
                let name = format!("o{i}").into_bytes();
                let (_, ib) = inline_at(img, leaf, &name);
                (name, ib.compact)
            })
            .collect()
    };
    assert!(encodings(&img, leaf).iter().all(|(_, c)| !c), "page images");
    let s = Arc::new(MemStorage::from_bytes(img));
    let db = open(&s);
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.inline_buckets, 4);
    let read_all = |db: &Db| {
        db.view(|tx| {
            let ns = tx.bucket(b"ns")?.unwrap();
            let mut out = Vec::new();
            for i in 0..4u32 {
                let b = ns.bucket(format!("o{i}").as_bytes())?.unwrap();
                let kv: Vec<_> = b
                    .iter()
                    .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
                    .collect::<Result<_, _>>()?;
                out.push((kv, b.sequence()));
            }
            Ok::<_, Error>(out)
        })
        .unwrap()
    };
    let before = read_all(&db);
    let pair = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
    assert_eq!(before[0].0, [pair(b"a", b"first"), pair(b"b", b"second")]);
    db.update(|tx| {
        let ns = tx.bucket(b"ns")?.unwrap();
        let b = ns.bucket(b"o1")?.unwrap();
        b.put(b"c", b"third")?;
        b.set_sequence(77)?;
        ns.put(b"new", b"pair")
    })
    .unwrap();
    drop(db);
    let img = s.to_bytes();
    let m = newest_meta(&img, P);
    assert_eq!(
        u32_at(&img, m.slot * P + 40),
        7,
        "the commit wrote version 7"
    );
    let (_, parents) = parents(&img, P);
    let leaf = leaf_holding_o0(&img, &parents);
    let got = encodings(&img, leaf);
    let want: Vec<(Vec<u8>, bool)> = (0..4)
        .map(|i| (format!("o{i}").into_bytes(), i == 1))
        .collect();
    assert_eq!(
        got, want,
        "o1, written again, is compact; the others stay as they were"
    );
    let db = open(&s);
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.inline_buckets, 4);
    let after = read_all(&db);
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2..], before[2..]);
    assert_eq!(
        after[1],
        (
            vec![
                pair(b"a", b"first"),
                pair(b"b", b"second"),
                pair(b"c", b"third")
            ],
            77
        )
    );
    // Salvage reads both encodings too.
    let dst = Db::in_memory().unwrap();
    let rep = deadbolt::salvage_storage(s.clone(), &dst).unwrap();
    assert!(rep.is_complete(), "{rep}");
    assert_eq!(read_all(&dst), after);
}

/// The benchmark's shape: a bucket holding one key "id" with a 4-byte value is 15 bytes of its
/// parent's leaf (54 as a page image), as the independent reader decodes it.
#[test]
fn a_one_key_bucket_is_a_15_byte_compact_inline_value() {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    db.update(|tx| {
        let ns = tx.create_bucket(b"ns")?;
        ns.create_bucket(b"b")?.put(b"id", &7u32.to_le_bytes())?;
        let seq = ns.create_bucket(b"s")?;
        seq.put(b"id", &8u32.to_le_bytes())?;
        seq.set_sequence(5)?;
        ns.put(b"pad", &[0u8; 300])
    })
    .unwrap();
    drop(db);
    let img = s.to_bytes();
    let (_, parents) = parents(&img, P);
    let leaf = parents
        .keys()
        .copied()
        .find(|&pg| {
            page_type(&img, P, pg) == 3
                && (0..count(&img, P, pg)).any(|i| &img[leaf_elem(&img, P, pg, i).1] == b"pad")
        })
        .expect("leaf of ns");
    let (_, v) = element(&img, leaf, b"b");
    assert_eq!(v.len(), 15);
    let ib = inline_bucket(&img[v.clone()]);
    assert!(ib.compact);
    assert_eq!(ib.sequence, 0);
    assert_eq!(
        inline_entries(&img[v.clone()]),
        [(b"id".to_vec(), 7u32.to_le_bytes().to_vec(), false)]
    );
    assert_eq!(inline_as_image(&img[v]).len(), 54, "its version-6 encoding");
    let (_, v) = element(&img, leaf, b"s");
    assert_eq!(v.len(), 23, "with a sequence");
    assert_eq!(inline_bucket(&img[v]).sequence, 5);
}

/// `Cursor::open_bucket` opens the nested bucket at the cursor's position (no second lookup in
/// a read transaction) and agrees with `Bucket::bucket` everywhere: read and write
/// transactions, inline and paged buckets, a value's key, a missing key.
#[test]
fn a_cursor_opens_the_nested_bucket_it_is_at_in_read_and_write_transactions() {
    let s = Arc::new(MemStorage::new());
    let db = open(&s);
    db.update(|tx| {
        let ns = tx.create_bucket(b"ns")?;
        ns.put(b"plain", b"value")?;
        ns.create_bucket(b"small")?.put(b"k", b"v")?;
        let big = ns.create_bucket(b"big")?;
        for i in 0..100u32 {
            big.put(&i.to_be_bytes(), &[1u8; 40])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let walk = |tx: &deadbolt::Tx<'_>| -> Result<Vec<(Vec<u8>, u64)>, Error> {
        let ns = tx.bucket(b"ns")?.unwrap();
        let mut c = ns.cursor();
        let mut out = Vec::new();
        let mut at = c.first()?;
        while let Some(e) = at {
            if e.value.is_none() {
                let b = c.open_bucket(&e.key)?;
                let by_name = ns.bucket(&e.key)?.unwrap();
                assert_eq!(b.stats()?.keys, by_name.stats()?.keys);
                out.push((e.key.to_vec(), b.stats()?.keys));
            } else {
                assert!(matches!(
                    c.open_bucket(&e.key),
                    Err(Error::IncompatibleValue)
                ));
            }
            at = c.next()?;
        }
        assert!(matches!(
            c.open_bucket(b"nothing"),
            Err(Error::BucketNotFound)
        ));
        Ok(out)
    };
    let want = vec![(b"big".to_vec(), 100), (b"small".to_vec(), 1)];
    assert_eq!(db.view(walk).unwrap(), want);
    db.update(|tx| {
        assert_eq!(walk(tx)?, want);
        // A bucket opened from a write cursor is writable.
        let ns = tx.bucket(b"ns")?.unwrap();
        let mut c = ns.cursor();
        c.seek(b"small")?;
        c.open_bucket(b"small")?.put(b"k2", b"v2")
    })
    .unwrap();
    let keys = db
        .view(|tx| {
            tx.bucket(b"ns")?
                .unwrap()
                .bucket(b"small")?
                .unwrap()
                .stats()
        })
        .unwrap()
        .keys;
    assert_eq!(keys, 2);
}

/// The leaf of "ns": the page whose elements include the inline bucket "o0".
fn leaf_holding_o0(img: &[u8], parents: &std::collections::HashMap<u64, (usize, u64)>) -> u64 {
    parents
        .keys()
        .copied()
        .find(|&pg| {
            page_type(img, P, pg) == 3
                && (0..count(img, P, pg)).any(|i| &img[leaf_elem(img, P, pg, i).1] == b"o0")
        })
        .expect("leaf of ns")
}
