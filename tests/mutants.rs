//! Damaged-image fuzzing: valid databases of several shapes, mutated thousands of ways (bit
//! flips, zeroed / swapped / truncated pages, pointers aimed at every page type and out of
//! range, cycles, absurd counts and lengths, a free list that lists live pages, both metas
//! damaged). On every mutant: open, check, iterate every bucket both ways, seek, get, write and
//! commit, reopen. Every step must return `Ok` or a typed error: a panic, a hang (watchdog), an
//! allocation beyond a fixed bound (counting allocator), or a value that differs from what was
//! written (for mutations that do not forge checksums) is a failure.
//!
//! `DEADBOLT_MUTANTS=N` sets the number of mutants (default 10,000); `DEADBOLT_SEED=S` replays
//! one.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::format::*;
use common::Rng;
use deadbolt::{Bucket, Db, Error, MemStorage, Options, Tx};

#[global_allocator]
static A: common::alloc::Counting = common::alloc::Counting;

/// Bound on extra memory one mutant may use beyond the image itself.
const MEM_BOUND: usize = 64 << 20;

type Content = BTreeMap<(Vec<Vec<u8>>, Vec<u8>), Vec<u8>>;

struct Shape {
    name: &'static str,
    page: usize,
    img: Vec<u8>,
    /// Content by commit: the newest and the one before it (which open falls back to when the
    /// newest commit's pages are damaged).
    contents: HashMap<u64, Content>,
}

fn content_of(db: &Db) -> Content {
    let mut content = Content::new();
    db.view(|tx| {
        let mut todo: Vec<Vec<Vec<u8>>> = tx.buckets().map(|n| vec![n.unwrap().to_vec()]).collect();
        while let Some(path) = todo.pop() {
            let b = resolve(tx, &path)?.unwrap();
            for kv in b.iter() {
                let (k, v) = kv?;
                content.insert((path.clone(), k.to_vec()), v.to_vec());
            }
            for n in b.buckets() {
                let mut p = path.clone();
                p.push(n?.to_vec());
                todo.push(p);
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    content
}

fn build(name: &'static str, page: usize, f: impl Fn(&Db) -> Result<(), Error>) -> Shape {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(
        s.clone(),
        Options {
            page_size: page,
            ..Options::default()
        },
    )
    .unwrap();
    f(&db).unwrap();
    assert!(db.check().unwrap().is_ok());
    let mut contents = HashMap::new();
    contents.insert(db.stats().txid, content_of(&db));
    drop(db);
    let img = s.to_bytes();
    // The previous commit: open with the newest meta slot wiped.
    let mut prev = img.clone();
    let newest = newest_meta(&img, page);
    prev[newest.slot * page..newest.slot * page + page].fill(0);
    let db = Db::open_storage(
        Arc::new(MemStorage::from_bytes(prev)),
        Options {
            page_size: page,
            ..Options::default()
        },
    )
    .unwrap();
    contents.insert(db.stats().txid, content_of(&db));
    Shape {
        name,
        page,
        img,
        contents,
    }
}

fn resolve<'a>(tx: &'a Tx<'a>, path: &[Vec<u8>]) -> Result<Option<Bucket<'a>>, Error> {
    let Some(mut b) = tx.bucket(&path[0])? else {
        return Ok(None);
    };
    for n in &path[1..] {
        match b.bucket(n)? {
            Some(x) => b = x,
            None => return Ok(None),
        }
    }
    Ok(Some(b))
}

fn shapes() -> Vec<Shape> {
    vec![
        build("nested", 4096, |db| {
            db.update(|tx| {
                for t in [&b"alpha"[..], b"beta", b"gamma"] {
                    let b = tx.create_bucket(t)?;
                    for i in 0..300u32 {
                        b.put(format!("{i:05}").as_bytes(), format!("v{i}").as_bytes())?;
                    }
                    let n = b.create_bucket(b"inner")?;
                    n.set_sequence(7)?;
                    for i in 0..100u32 {
                        n.put(&i.to_be_bytes(), &[i as u8; 40])?;
                    }
                    n.create_bucket(b"deeper")?.put(b"k", b"v")?;
                }
                Ok(())
            })
        }),
        build("overflow", 1024, |db| {
            db.update(|tx| {
                let b = tx.create_bucket(b"blobs")?;
                for i in 0..40u32 {
                    b.put(&i.to_be_bytes(), &vec![i as u8; 900 + 300 * i as usize])?;
                }
                Ok(())
            })
        }),
        build("deep", 1024, |db| {
            db.update(|tx| {
                let b = tx.create_bucket(b"many")?;
                for i in 0..4000u32 {
                    b.put(format!("key-{i:06}").as_bytes(), &[7u8; 20])?;
                }
                Ok(())
            })
        }),
        build("big16k", 16384, |db| {
            db.update(|tx| {
                let b = tx.create_bucket(b"big")?;
                b.put(&vec![b'K'; 32768], b"huge key")?;
                b.put(&vec![b'J'; 20000], &vec![1u8; 70000])?;
                for i in 0..500u32 {
                    b.put(&i.to_le_bytes(), &[3u8; 100])?;
                }
                Ok(())
            })
        }),
        build("inline", 1024, |db| {
            // Small buckets stored inline (docs/FORMAT.md, section 5), beside pairs with large
            // values, in a multi-level tree of 1 KiB pages.
            db.update(|tx| {
                let ns = tx.create_bucket(b"ns")?;
                for i in 0..120u32 {
                    let o = ns.create_bucket(format!("obj-{i:04}").as_bytes())?;
                    o.set_sequence(u64::from(i))?;
                    for j in 0..(i % 5) {
                        o.put(format!("k{j}").as_bytes(), &[j as u8; 12])?;
                    }
                    if i % 7 == 0 {
                        ns.put(format!("obj-{i:04}-blob").as_bytes(), &[i as u8; 180])?;
                    }
                }
                Ok(())
            })
        }),
        build("churned", 4096, |db| {
            for round in 0..12u32 {
                db.update(|tx| {
                    let b = tx.create_bucket_if_not_exists(b"churn")?;
                    for i in 0..400u32 {
                        if (i + round) % 3 == 0 {
                            b.delete(&i.to_be_bytes())?;
                        } else {
                            b.put(&i.to_be_bytes(), &vec![round as u8; 30 + (i % 50) as usize])?;
                        }
                    }
                    if round % 4 == 0 {
                        let n = b.create_bucket_if_not_exists(b"sub")?;
                        n.put(&round.to_be_bytes(), b"x")?;
                    }
                    Ok::<_, Error>(())
                })?;
            }
            Ok(())
        }),
    ]
}

/// Apply one random mutation; returns (description, forged) where `forged` means checksums were
/// recomputed so that the change is consistent (a deliberate forgery, which may legitimately
/// change values).
fn mutate(rng: &mut Rng, s: &Shape, img: &mut Vec<u8>) -> (String, bool) {
    let p = s.page;
    let pages = img.len() / p;
    let (meta, par) = parents(&s.img, p);
    let reach: Vec<u64> = par.keys().copied().collect();
    let pick_reach = |rng: &mut Rng| reach[rng.below(reach.len() as u64) as usize];
    match rng.below(16) {
        0 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let at = rng.below(img.len() as u64) as usize;
                img[at] ^= 1 << rng.below(8);
            }
            (format!("{n} bit flips"), false)
        }
        1 => {
            let pg = rng.below(pages as u64) as usize;
            img[pg * p..pg * p + p].fill(0);
            (format!("zeroed page {pg}"), false)
        }
        2 => {
            let a = rng.below(pages as u64) as usize;
            let b = rng.below(pages as u64) as usize;
            for i in 0..p {
                img.swap(a * p + i, b * p + i);
            }
            (format!("swapped pages {a} and {b}"), false)
        }
        3 => {
            let len = rng.below(img.len() as u64) as usize;
            img.truncate(len);
            (format!("truncated to {len}"), false)
        }
        4 => {
            let pg = rng.below(pages as u64) as usize;
            for b in &mut img[pg * p..pg * p + p] {
                *b = rng.next_u64() as u8;
            }
            (format!("garbage page {pg}"), false)
        }
        5 | 6 => {
            // Re-point a branch element (or a bucket root) somewhere hostile, checksums forged.
            let branches: Vec<u64> = reach
                .iter()
                .copied()
                .filter(|&g| page_type(&s.img, p, g) == 2)
                .collect();
            let (off, holder) = if !branches.is_empty() && rng.chance(70) {
                let g = branches[rng.below(branches.len() as u64) as usize];
                (
                    branch_elem(p, g, rng.below(count(&s.img, p, g) as u64) as usize),
                    g,
                )
            } else {
                let g = pick_reach(rng);
                *par.get(&g).unwrap()
            };
            let target = match rng.below(8) {
                0 => 0,
                1 => 1,
                2 => meta.freelist.pgid,
                3 => meta.root.pgid,
                4 => holder,
                5 => meta.hwm + rng.below(1000),
                6 => u64::MAX - rng.below(3),
                _ => pick_reach(rng),
            };
            let old = ref_at(img, off);
            let tr = if (target as usize) < pages && target >= 2 {
                ref_to(img, p, target)
            } else {
                Ref {
                    pgid: target,
                    txid: old.txid,
                    crc: old.crc,
                }
            };
            put_ref(img, off, tr);
            if holder >= 2 {
                reseal_chain(img, p, holder, &par);
            } else {
                reseal(img, p, holder);
            }
            (
                format!("ref at {off} in page {holder} -> page {target} (forged)"),
                true,
            )
        }
        7 | 8 => {
            // Absurd counts, offsets and lengths on a reachable page, checksums forged.
            let g = pick_reach(rng);
            let base = g as usize * p;
            let field = match rng.below(5) {
                0 => 6,                                                                 // count
                1 => 24,                                                                // overflow
                _ => 32 + 16 * rng.below(4) as usize + 4 * (1 + rng.below(3) as usize), // element fields
            };
            let v: u32 = match rng.below(4) {
                0 => 0,
                1 => u32::MAX,
                2 => 0x7fff_ffff,
                _ => rng.next_u64() as u32,
            };
            if field == 6 {
                img[base + 6..base + 8].copy_from_slice(&(v as u16).to_le_bytes());
            } else if base + field + 4 <= img.len() {
                put_u32(img, base + field, v);
            }
            if field == 24 {
                // An absurd overflow also breaks the span the chain reseal would hash.
                reseal_chain_safe(img, p, g, &par);
            } else {
                reseal_chain(img, p, g, &par);
            }
            (format!("field {field} of page {g} = {v:#x} (forged)"), true)
        }
        9 => {
            // The free list lists a live page.
            if meta.freelist.pgid == 0 {
                return ("no freelist".into(), false);
            }
            let f = meta.freelist.pgid as usize * p;
            let live = pick_reach(rng);
            let nadd = u32_at(img, f + 72);
            let nrem = u32_at(img, f + 76);
            let at = f + 80 + 16 * (nadd + nrem) as usize;
            if at + 16 > f + span_len(img, p, meta.freelist.pgid) {
                return ("freelist full".into(), false);
            }
            // Insert the run at the end of the add list (shift the remove runs).
            let rem: Vec<u8> = img[f + 80 + 16 * nadd as usize..at].to_vec();
            put_u64(img, f + 80 + 16 * nadd as usize, live);
            put_u64(img, f + 88 + 16 * nadd as usize, 1);
            img[f + 96 + 16 * nadd as usize..at + 16].copy_from_slice(&rem);
            put_u32(img, f + 72, nadd + 1);
            reseal_chain(img, p, meta.freelist.pgid, &par);
            (format!("freelist lists live page {live} (forged)"), true)
        }
        12 | 13 => {
            // Issue 11, point 7: a branch element aimed at a verified page in the wrong place
            // (12: a child of another branch of the same level, a sibling's subtree; 13: a
            // page two or more levels down), every checksum up to the meta forged.
            let level = |g: u64| s.img[g as usize * p + 5];
            let nodes: Vec<u64> = reach
                .iter()
                .copied()
                .filter(|&g| matches!(page_type(&s.img, p, g), 2 | 3))
                .collect();
            let branches: Vec<u64> = nodes
                .iter()
                .copied()
                .filter(|&g| page_type(&s.img, p, g) == 2)
                .collect();
            if branches.is_empty() {
                return ("no branch to forge".into(), false);
            }
            let g = branches[rng.below(branches.len() as u64) as usize];
            let i = rng.below(count(&s.img, p, g) as u64) as usize;
            let own = u64_at(&s.img, branch_elem(p, g, i));
            let sibling = rng.chance(50);
            let targets: Vec<u64> = nodes
                .iter()
                .copied()
                .filter(|&t| t != own)
                .filter(|&t| {
                    if sibling {
                        level(t) + 1 == level(g)
                    } else {
                        level(t) + 2 <= level(g)
                    }
                })
                .collect();
            if targets.is_empty() {
                return ("no target to forge".into(), false);
            }
            let target = targets[rng.below(targets.len() as u64) as usize];
            let tr = ref_to(img, p, target);
            put_ref(img, branch_elem(p, g, i), tr);
            reseal_chain(img, p, g, &par);
            (
                format!(
                    "misplaced pointer: element {i} of branch {g} -> page {target} ({}) (forged)",
                    if sibling {
                        "sibling subtree"
                    } else {
                        "deeper page"
                    }
                ),
                true,
            )
        }
        14 | 15 => {
            // Inside an inline bucket (a bucket element's value other than a header): a forged
            // count, first byte, element offset or length, a nested-bucket flag in it, or the
            // bucket flag forged onto a large plain value; checksums forged up to the meta.
            let mut inline = Vec::new();
            let mut plain = Vec::new();
            for &g in &reach {
                if page_type(&s.img, p, g) != 3 {
                    continue;
                }
                for i in 0..count(&s.img, p, g) {
                    let (flags, _, v) = leaf_elem(&s.img, p, g, i);
                    // A compact inline bucket may be shorter than a header (10 bytes and up).
                    if flags == 1 && v.len() != 32 {
                        inline.push((g, i, v));
                    } else if flags == 0 && v.len() > 48 {
                        plain.push((g, i, v));
                    }
                }
            }
            let (g, what) = if !plain.is_empty() && (inline.is_empty() || rng.chance(25)) {
                let (g, i, _) = plain[rng.below(plain.len() as u64) as usize].clone();
                img[g as usize * p + 32 + 16 * i] = 1;
                (g, format!("bucket flag on plain value {i}"))
            } else if !inline.is_empty() {
                let (g, i, v) = inline[rng.below(inline.len() as u64) as usize].clone();
                // The layout as the independent reader decodes it: compact (version 7) or a
                // page image (versions 3 to 6).
                let ib = inline_bucket(&s.img[v.clone()]);
                let pick = rng.below(ib.elems.len().max(1) as u64) as usize;
                let e = ib.elems.get(pick).map(|e| v.start + e.elem.start);
                let what = match (rng.below(5), e) {
                    (0, _) if ib.compact => {
                        let c = rng.next_u64() as u16;
                        img[v.start + 1..v.start + 3].copy_from_slice(&c.to_le_bytes());
                        format!("compact inline count {c}")
                    }
                    (0, _) => {
                        let c = rng.next_u64() as u16;
                        img[v.start + 6..v.start + 8].copy_from_slice(&c.to_le_bytes());
                        format!("inline count {c}")
                    }
                    (1, Some(e)) if ib.compact => {
                        img[e + 5] |= 0x80;
                        "nested bucket flag inside (compact)".to_string()
                    }
                    (1, Some(e)) => {
                        img[e] = 1;
                        "nested bucket flag inside".to_string()
                    }
                    (2, _) if ib.compact => {
                        let b = rng.next_u64() as u8;
                        img[v.start] = b;
                        format!("compact inline first byte {b:#x}")
                    }
                    (2, _) => {
                        img[v.start + 4] = rng.below(6) as u8;
                        "inline page type".to_string()
                    }
                    (_, Some(e)) if ib.compact => {
                        let f = e + 2 * rng.below(3) as usize;
                        let x = match rng.below(3) {
                            0 => u16::MAX,
                            1 => v.len() as u16,
                            _ => rng.below(v.len() as u64 + 8) as u16,
                        };
                        img[f..f + 2].copy_from_slice(&x.to_le_bytes());
                        format!("compact inline element field {} = {x:#x}", f - e)
                    }
                    (_, Some(e)) => {
                        let f = e + 4 * (1 + rng.below(3) as usize);
                        let x = match rng.below(3) {
                            0 => u32::MAX,
                            1 => v.len() as u32,
                            _ => rng.below(v.len() as u64 + 8) as u32,
                        };
                        put_u32(img, f, x);
                        format!("inline element field {} = {x:#x}", f - e)
                    }
                    _ => "nothing".to_string(),
                };
                (g, format!("{what} in bucket {i}"))
            } else {
                return ("no inline bucket".into(), false);
            };
            reseal_chain(img, p, g, &par);
            (format!("inline: {what} of page {g} (forged)"), true)
        }
        10 => {
            img[40] ^= 0xff;
            img[p + 40] ^= 0xff;
            ("both metas damaged".into(), false)
        }
        _ => {
            // Stale page: an older version of a page put back (a lost write).
            let g = pick_reach(rng);
            let other = pick_reach(rng);
            let (a, b) = (g as usize * p, other as usize * p);
            let src = img[b..b + p].to_vec();
            img[a..a + p].copy_from_slice(&src);
            put_u64(img, a + 8, g);
            let len = span_len(img, p, g).min(img.len() - a);
            let c = crc32fast::hash(&img[a + 4..a + len]);
            put_u32(img, a, c);
            (
                format!("page {g} replaced by a self-consistent copy of {other}"),
                false,
            )
        }
    }
}

/// Like [`reseal_chain`] but never hashes past the image when the overflow field is absurd.
fn reseal_chain_safe(img: &mut [u8], p: usize, g: u64, par: &HashMap<u64, (usize, u64)>) {
    let at = g as usize * p;
    let over = u32_at(img, at + 24);
    if (at + (1 + over as usize).saturating_mul(p)) > img.len() {
        return;
    }
    reseal_chain(img, p, g, par);
}

fn exercise(
    img: Vec<u8>,
    page: usize,
    contents: &HashMap<u64, Content>,
    forged: bool,
) -> Result<(), String> {
    // Truncated to nothing: open creates a new, empty database (the only file it initialises).
    let fresh = img.is_empty();
    let storage = Arc::new(MemStorage::from_bytes(img));
    let opts = Options {
        page_size: page,
        ..Options::default()
    };
    let db = match Db::open_storage(storage.clone(), opts.clone()) {
        Ok(db) => db,
        Err(_) => return Ok(()),
    };
    let _ = db.check();
    let empty = Content::new();
    let content = if fresh {
        Some(&empty)
    } else {
        contents.get(&db.stats().txid)
    };
    let Some(content) = content else {
        return Err(format!("opened at unexpected commit {}", db.stats().txid));
    };
    let check_value = |path: &Vec<Vec<u8>>, k: &[u8], v: &[u8]| -> Result<(), String> {
        if forged {
            return Ok(());
        }
        match content.get(&(path.clone(), k.to_vec())) {
            Some(w) if w.as_slice() == v => Ok(()),
            Some(_) => Err(format!("wrong value for {path:?}/{k:?}")),
            None => Err(format!("phantom key {path:?}/{k:?}")),
        }
    };
    let r: Result<Result<(), String>, Error> = db.view(|tx| {
        let mut todo: Vec<Vec<Vec<u8>>> = Vec::new();
        for n in tx.buckets().take(64) {
            todo.push(vec![n?.to_vec()]);
        }
        let mut visited = 0;
        while let Some(path) = todo.pop() {
            visited += 1;
            if visited > 256 {
                break;
            }
            let Ok(Some(b)) = resolve(tx, &path) else {
                continue;
            };
            // Whatever the damage, forged or not, iteration never returns keys out of order or
            // twice (fence keys, issue 11 point 7): it stops with an error instead.
            let mut keys: Vec<Vec<u8>> = Vec::new();
            for kv in b.iter().take(100_000) {
                let Ok((k, v)) = kv else { break };
                if let Err(e) = check_value(&path, &k, &v) {
                    return Ok(Err(e));
                }
                if keys.last().is_some_and(|l| l.as_slice() >= &k[..]) {
                    return Ok(Err(format!("{path:?}: keys out of order going forward")));
                }
                keys.push(k.to_vec());
            }
            let mut prev: Option<Vec<u8>> = None;
            for kv in b.iter().rev().take(100_000) {
                let Ok((k, v)) = kv else { break };
                if let Err(e) = check_value(&path, &k, &v) {
                    return Ok(Err(e));
                }
                if prev.as_deref().is_some_and(|p| p <= &k[..]) {
                    return Ok(Err(format!("{path:?}: keys out of order going backward")));
                }
                prev = Some(k.to_vec());
            }
            for k in keys.iter().step_by(37).take(20) {
                if let Ok(Some(v)) = b.get(k) {
                    if let Err(e) = check_value(&path, k, &v) {
                        return Ok(Err(e));
                    }
                }
                let mut c = b.cursor();
                let _ = c.seek(k);
                let _ = c.next();
                let _ = c.prev();
            }
            for n in b.buckets().take(64) {
                let Ok(n) = n else { break };
                let mut p = path.clone();
                p.push(n.to_vec());
                todo.push(p);
            }
        }
        Ok(Ok(()))
    });
    if let Ok(Err(e)) = r {
        return Err(e);
    }
    let _ = db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"fuzz-write")?;
        b.put(b"after", b"damage")?;
        if let Some(first) = tx.buckets().next() {
            let name = first?.to_vec();
            if let Some(b) = tx.bucket(&name)? {
                b.put(b"\x00written", b"x")?;
            }
        }
        Ok::<_, Error>(())
    });
    drop(db);
    if let Ok(db) = Db::open_storage(Arc::new(MemStorage::from_bytes(storage.to_bytes())), opts) {
        let _ = db.view(|tx| {
            if let Some(b) = tx.bucket(b"fuzz-write")? {
                for kv in b.iter() {
                    kv?;
                }
            }
            Ok::<_, Error>(())
        });
        let _ = db.check();
    }
    Ok(())
}

#[test]
fn ten_thousand_mutants() {
    let shapes = shapes();
    let n: u64 = std::env::var("DEADBOLT_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seeds: Vec<u64> = match std::env::var("DEADBOLT_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (0..n).collect(),
    };
    // Watchdog: a mutant that runs for more than 30 s is a hang.
    let t0 = Instant::now();
    let started = Arc::new(AtomicU64::new(0));
    let current = Arc::new(AtomicU64::new(u64::MAX));
    {
        let (started, current) = (started.clone(), current.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let s = started.load(Ordering::Relaxed);
            let seed = current.load(Ordering::Relaxed);
            if seed != u64::MAX && (t0.elapsed().as_millis() as u64).saturating_sub(s) > 30_000 {
                eprintln!("mutant seed {seed} hangs; replay with: DEADBOLT_SEED={seed} cargo test --release --test mutants");
                std::process::abort();
            }
        });
    }
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for &seed in &seeds {
        let mut rng = Rng::new(seed);
        let s = &shapes[(seed % shapes.len() as u64) as usize];
        let mut img = s.img.clone();
        let (what, forged) = mutate(&mut rng, s, &mut img);
        let kind: String = what
            .chars()
            .filter(|c| c.is_alphabetic() || *c == ' ')
            .collect();
        *kinds
            .entry(
                kind.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .or_default() += 1;
        started.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
        current.store(seed, Ordering::Relaxed);
        let base = common::alloc::reset();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            exercise(img, s.page, &s.contents, forged)
        }));
        current.store(u64::MAX, Ordering::Relaxed);
        let grew = common::alloc::peak_above(base);
        let verdict = match r {
            Err(_) => Some("panic".to_string()),
            Ok(Err(e)) => Some(e),
            Ok(Ok(())) if grew > MEM_BOUND + s.img.len() * 4 => {
                Some(format!("allocated {grew} bytes"))
            }
            Ok(Ok(())) => None,
        };
        if let Some(v) = verdict {
            failures.push(format!(
                "seed {seed} ({} shape, {what}): {v}; replay with: DEADBOLT_SEED={seed} cargo test --release --test mutants",
                s.name
            ));
        }
    }
    println!(
        "{} mutants in {:?}; kinds {:?}",
        seeds.len(),
        t0.elapsed(),
        kinds
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
