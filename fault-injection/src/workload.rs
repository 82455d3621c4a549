//! Workloads: the fixed small ones of the bounded exhaustive tier, and seeded random ones for
//! the torture runner.

use crate::model::{Op, Path, State};
use crate::rng::Rng;

fn b(name: &str) -> Path {
    name.split('/').map(|s| s.as_bytes().to_vec()).collect()
}

fn k(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// A value of `n` bytes whose content depends on `tag`, so values of different commits differ.
pub fn val(tag: u64, n: usize) -> Vec<u8> {
    let mut r = Rng::new(tag.wrapping_mul(0x9E37_79B9) ^ n as u64);
    r.bytes(n)
}

/// A named small workload for the exhaustive tier: a few commits over a small key alphabet.
pub struct Fixed {
    pub name: &'static str,
    pub commits: Vec<Vec<Op>>,
}

/// The exhaustive tier's workloads for page size `p`: empty, small, page-sized and overflow
/// values; a split-forcing insert, a merge-forcing delete, delete-everything, bucket deletion,
/// nested buckets, file growth, re-insertion after deletion (resurrection check), and small
/// buckets moving across the inline limit (issue 15).
pub fn fixed(p: usize) -> Vec<Fixed> {
    let small = |t| val(t, 12);
    let page = |t| val(t, p - p / 8);
    let third = |t| val(t, p / 3);
    let over = |t, n: usize| val(t, n * p + p / 2);
    let bb = b("b");
    let put = |path: &Path, key: &str, v: Vec<u8>| Op::Put(path.clone(), k(key), v);
    let del = |path: &Path, key: &str| Op::Delete(path.clone(), k(key));
    vec![
        Fixed {
            name: "basic",
            commits: vec![
                vec![
                    Op::CreateBucket(bb.clone()),
                    put(&bb, "k1", small(1)),
                    put(&bb, "k2", Vec::new()),
                    put(&bb, "k3", page(3)),
                ],
                vec![
                    put(&bb, "k4", over(4, 2)),
                    del(&bb, "k1"),
                    put(&bb, "k2", small(22)),
                ],
                vec![del(&bb, "k2"), del(&bb, "k3"), del(&bb, "k4")],
            ],
        },
        Fixed {
            name: "split-merge",
            commits: vec![
                (1..=8)
                    .map(|i| put(&bb, &format!("k{i}"), third(10 + i)))
                    .fold(vec![Op::CreateBucket(bb.clone())], |mut v, o| {
                        v.push(o);
                        v
                    }),
                (1..=7).map(|i| del(&bb, &format!("k{i}"))).collect(),
                vec![Op::DeleteBucket(bb.clone()), Op::CreateBucket(b("c"))],
            ],
        },
        Fixed {
            name: "growth-nested",
            commits: vec![
                vec![
                    Op::CreateBucket(bb.clone()),
                    Op::CreateBucket(b("b/n")),
                    put(&b("b/n"), "k1", over(31, 4)),
                ],
                vec![
                    put(&bb, "k2", over(32, 3)),
                    put(&b("b/n"), "k1", Vec::new()),
                ],
                vec![Op::DeleteBucket(b("b/n")), put(&bb, "k1", page(33))],
            ],
        },
        Fixed {
            name: "resurrect",
            commits: vec![
                vec![
                    Op::CreateBucket(bb.clone()),
                    put(&bb, "k1", small(41)),
                    put(&bb, "k2", small(42)),
                    put(&bb, "k3", page(43)),
                ],
                vec![del(&bb, "k1"), del(&bb, "k2"), del(&bb, "k3")],
                vec![put(&bb, "k1", small(44)), put(&bb, "k2", third(45))],
            ],
        },
        small_buckets(p),
        shrink_after_sync(p),
    ]
}

/// A free tail after a sync (issue 13): 40 overflow values (two-page spans, about 80 pages)
/// at the start of the file; all deleted; a small put that reuses the freed pages at the bottom
/// (so that the tree pages at the top are freed); a last small put. Under `no_sync` the
/// exhaustive tier calls `Db::sync` after the second and the third commit: the last commit then
/// finds the end of the file free and its high-water mark falls far below the synced commit's,
/// and the file must not be cut below the synced commit's (a power cut may keep the shorter
/// length and lose the new meta). Durable, the last commit shrinks the file.
fn shrink_after_sync(p: usize) -> Fixed {
    let bb = b("b");
    let key = |i: usize| k(&format!("v{i:02}"));
    Fixed {
        name: "shrink-after-sync",
        commits: vec![
            std::iter::once(Op::CreateBucket(bb.clone()))
                .chain((0..40).map(|i| Op::Put(bb.clone(), key(i), val(60 + i as u64, p + p / 2))))
                .collect(),
            (0..40).map(|i| Op::Delete(bb.clone(), key(i))).collect(),
            vec![Op::Put(bb.clone(), k("s"), val(99, 12))],
            vec![Op::Put(bb.clone(), k("t"), val(98, 12))],
        ],
    }
}

/// Small buckets across the inline limit (issue 15: a nested bucket of at most about a quarter
/// page lives in its parent's leaf; since format 6 with its own nested buckets, if those are
/// inline or empty too). An entry here is about
/// 0.18 of a quarter page (a 2-byte key, a value of 45/1024 of a page less 19 bytes, and a
/// 16-byte element header), so four entries are well under the limit and eight well over it
/// at every page size, whatever the engine's exact rule. Commit by commit: six small nested
/// buckets (0-4 entries) and a small top-level one; two grow past the limit (one from empty)
/// and one to near it, one gains a nested bucket, one is deleted; then the two shrink back
/// below the limit by deletes, the nested bucket is deleted, one bucket is emptied, and two
/// grow past the limit (the top-level one among them).
fn small_buckets(p: usize) -> Fixed {
    let entry = |t| val(t, p * 45 / 1024 - 19);
    let bb = b("b");
    let s = |i: usize| b(&format!("b/s{i}"));
    // Entries `from..to` of bucket `path`, tagged so that every commit's values differ.
    let fill = |path: &Path, from: usize, to: usize, tag: u64| -> Vec<Op> {
        (from..to)
            .map(|i| Op::Put(path.clone(), k(&format!("k{i}")), entry(tag + i as u64)))
            .collect()
    };
    let remove = |path: &Path, from: usize, to: usize| -> Vec<Op> {
        (from..to)
            .map(|i| Op::Delete(path.clone(), k(&format!("k{i}"))))
            .collect()
    };
    let mut c1 = vec![
        Op::CreateBucket(bb.clone()),
        Op::Put(bb.clone(), k("k1"), val(50, 12)),
        Op::CreateBucket(b("t")),
    ];
    c1.extend(fill(&b("t"), 1, 2, 50));
    for i in 0..6 {
        c1.push(Op::CreateBucket(s(i)));
        c1.extend(fill(&s(i), 0, i.min(4), 60 + 10 * i as u64));
    }
    let mut c2 = Vec::new();
    c2.extend(fill(&s(0), 0, 8, 120)); // empty -> over the limit
    c2.extend(fill(&s(4), 4, 9, 130)); // 4 -> 9 entries
    c2.extend(fill(&s(5), 4, 6, 140)); // 4 -> 6 entries: near the limit
    c2.push(Op::CreateBucket(b("b/s3/n"))); // a small child: both inline in format 6
    c2.extend(fill(&b("b/s3/n"), 0, 1, 150));
    c2.push(Op::DeleteBucket(s(2))); // a small bucket deleted
    c2.extend(fill(&s(1), 0, 1, 160)); // stays small, value rewritten
    let mut c3 = Vec::new();
    c3.extend(remove(&s(0), 2, 8)); // 8 -> 2 entries: back under the limit
    c3.extend(remove(&s(4), 0, 6)); // 9 -> 3
    c3.push(Op::DeleteBucket(b("b/s3/n"))); // s3 holds pairs only again
    c3.extend(remove(&s(1), 0, 1)); // emptied
    c3.extend(fill(&s(5), 6, 10, 170)); // 6 -> 10 entries
    c3.extend(fill(&b("t"), 2, 9, 180)); // the top-level one over the limit
    Fixed {
        name: "small-buckets",
        commits: vec![c1, c2, c3],
    }
}

/// Parameters of a random workload (drawn per seed: swarm testing).
#[derive(Clone, Debug)]
pub struct Params {
    pub page: usize,
    pub keys: usize,
    pub max_value: usize,
    pub max_ops: usize,
    pub p_large: f64,
    pub max_depth: usize,
}

impl Params {
    pub fn draw(rng: &mut Rng, page: usize) -> Params {
        Params {
            page,
            keys: *rng.pick(&[4usize, 16, 64, 256]),
            max_value: *rng.pick(&[64usize, 4 * page, 100_000]),
            max_ops: *rng.pick(&[2usize, 6, 20]),
            p_large: *rng.pick(&[0.0, 0.05, 0.15]),
            max_depth: *rng.pick(&[1usize, 2, 3]),
        }
    }
}

fn rand_value(rng: &mut Rng, p: &Params) -> Vec<u8> {
    let page = p.page;
    let n = match rng.below(100) {
        0..=9 => 0,
        10..=54 => 1 + rng.below_usize(64),
        55..=74 => 64 + rng.below_usize(page / 2),
        75..=84 => page - 64 + rng.below_usize(128),
        _ => {
            if rng.chance(p.p_large) {
                rng.below_usize(p.max_value + 1)
            } else {
                page + rng.below_usize(3 * page)
            }
        }
    };
    rng.bytes(n.min(p.max_value))
}

fn rand_key(rng: &mut Rng, p: &Params) -> Vec<u8> {
    let i = rng.below_usize(p.keys);
    let mut key = format!("k{i:04}").into_bytes();
    if i % 13 == 7 {
        // A few long keys (same key always long, so the alphabet stays small).
        key.resize(64 + (i * 37) % (p.page / 4).max(64), b'x');
    }
    key
}

/// One random commit, valid for `state` (all ops target existing buckets).
pub fn random_commit(rng: &mut Rng, state: &State, p: &Params) -> Vec<Op> {
    let mut st = state.clone();
    let n = 1 + rng.below_usize(p.max_ops);
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let buckets = st.bucket_paths();
        let op = if buckets.is_empty() || rng.chance(0.04) {
            // Create a bucket, top-level or nested.
            let mut path = if !buckets.is_empty() && rng.chance(0.5) {
                rng.pick(&buckets).clone()
            } else {
                Vec::new()
            };
            if path.len() >= p.max_depth {
                path.truncate(p.max_depth - 1);
            }
            path.push(format!("b{}", rng.below(4)).into_bytes());
            if rng.chance(0.3) {
                // A small bucket: 0-5 keys of the alphabet with values of up to 24 bytes, the
                // kind an engine may keep inline in its parent's leaf (issue 15).
                let create = Op::CreateBucket(path.clone());
                st.apply(&create);
                ops.push(create);
                for _ in 0..rng.below_usize(6) {
                    let key = rand_key(rng, p);
                    let n = rng.below_usize(25);
                    let o = Op::Put(path.clone(), key, rng.bytes(n));
                    st.apply(&o);
                    ops.push(o);
                }
                continue;
            }
            Op::CreateBucket(path)
        } else {
            let path = rng.pick(&buckets).clone();
            match rng.below(100) {
                0..=54 => Op::Put(path, rand_key(rng, p), rand_value(rng, p)),
                55..=79 => {
                    let bucket = st.at(&path).unwrap();
                    let key = if !bucket.kv.is_empty() && rng.chance(0.8) {
                        let i = rng.below_usize(bucket.kv.len());
                        bucket.kv.keys().nth(i).unwrap().clone()
                    } else {
                        rand_key(rng, p)
                    };
                    Op::Delete(path, key)
                }
                80..=87 => {
                    // Delete everything in the bucket (merges), as separate ops.
                    let keys: Vec<Vec<u8>> = st.at(&path).unwrap().kv.keys().cloned().collect();
                    for key in keys {
                        let o = Op::Delete(path.clone(), key);
                        st.apply(&o);
                        ops.push(o);
                    }
                    continue;
                }
                88..=91 => Op::DeleteBucket(path),
                _ => {
                    // Overwrite an existing key with a new value.
                    let bucket = st.at(&path).unwrap();
                    if bucket.kv.is_empty() {
                        Op::Put(path, rand_key(rng, p), rand_value(rng, p))
                    } else {
                        let i = rng.below_usize(bucket.kv.len());
                        let key = bucket.kv.keys().nth(i).unwrap().clone();
                        Op::Put(path, key, rand_value(rng, p))
                    }
                }
            }
        };
        st.apply(&op);
        ops.push(op);
    }
    ops
}

/// A top-level bucket name of about `page / 3` bytes, so that a few fill a root leaf and the
/// root tree (the tree of top-level buckets) splits and merges at several levels. The names
/// differ only in their last bytes: a leaf split stores the shortest separator that divides
/// the halves, and names told apart by a leading number gave 4-byte separators, with which
/// the branches no longer split (the tree stopped at height 2).
fn root_name(j: usize, page: usize) -> Vec<u8> {
    let mut n = vec![b'r'; page / 3 - 4];
    n.extend_from_slice(format!("-{j:03}").as_bytes());
    n
}

/// One commit of the path-coverage workload (issue 13), valid for `state`: fragmentation heavy
/// enough to write and chain free-list delta records (overflow values, random deletes and
/// overwrites in bucket `f`), overflow values growing and shrinking, nested buckets under
/// `f/n` created and deleted, and long-named top-level buckets created for eight commits and
/// deleted for the next eight (`i` is the commit's index), so the root tree splits to height 3
/// and merges back. Meant for 1 KiB pages and lifetimes of more than 16 commits.
pub fn paths_commit(rng: &mut Rng, state: &State, page: usize, i: usize) -> Vec<Op> {
    let mut st = state.clone();
    let mut ops = Vec::new();
    let mut push = |st: &mut State, op: Op| {
        st.apply(&op);
        ops.push(op);
    };
    let f = b("f");
    let fnest = b("f/n");
    if st.at(&f).is_none() {
        push(&mut st, Op::CreateBucket(f.clone()));
    }
    if st.at(&fnest).is_none() {
        push(&mut st, Op::CreateBucket(fnest.clone()));
    }
    // Fragmentation: 48 two-page values a commit in bucket `g` for the first four commits of a
    // lifetime (while it holds fewer than 150), then a few
    // deleted at random every commit, leave many separate free runs (a full free-list record
    // outgrows a page, so commits write delta records).
    let g = b("g");
    if st.at(&g).is_none() {
        push(&mut st, Op::CreateBucket(g.clone()));
    }
    if i < 4 && st.at(&g).is_some_and(|g| g.kv.len() < 150) {
        for j in 0..48 {
            let key = format!("g{:03}", i * 48 + j).into_bytes();
            push(&mut st, Op::Put(g.clone(), key, rng.bytes(page + 1)));
        }
    } else {
        for _ in 0..4 + rng.below_usize(5) {
            let keys: Vec<Vec<u8>> = st.at(&g).unwrap().kv.keys().cloned().collect();
            if keys.is_empty() {
                break;
            }
            let key = rng.pick(&keys).clone();
            push(&mut st, Op::Delete(g.clone(), key));
        }
    }
    let over = |rng: &mut Rng| page + 1 + rng.below_usize(3 * page);
    for _ in 0..3 + rng.below_usize(4) {
        let key = format!("k{:02}", rng.below(40)).into_bytes();
        let n = if rng.chance(0.5) {
            over(rng)
        } else {
            rng.below_usize(200)
        };
        push(&mut st, Op::Put(f.clone(), key, rng.bytes(n)));
    }
    for _ in 0..2 + rng.below_usize(3) {
        let keys: Vec<Vec<u8>> = st.at(&f).unwrap().kv.keys().cloned().collect();
        if keys.is_empty() {
            break;
        }
        let key = rng.pick(&keys).clone();
        push(&mut st, Op::Delete(f.clone(), key));
    }
    let n = over(rng);
    push(
        &mut st,
        Op::Put(fnest.clone(), b"big".to_vec(), rng.bytes(n)),
    );
    if rng.chance(0.3) {
        let m = fnest
            .iter()
            .cloned()
            .chain([format!("m{}", rng.below(3)).into_bytes()])
            .collect::<Path>();
        if st.at(&m).is_some() {
            push(&mut st, Op::DeleteBucket(m));
        } else {
            push(&mut st, Op::CreateBucket(m.clone()));
            push(&mut st, Op::Put(m, b"x".to_vec(), rng.bytes(40)));
        }
    }
    let roots: Vec<Vec<u8>> = st
        .subs
        .keys()
        .filter(|k| k.first() == Some(&b'r'))
        .cloned()
        .collect();
    if (i / 8).is_multiple_of(2) {
        for _ in 0..2 + rng.below_usize(3) {
            let name = root_name(rng.below_usize(48), page);
            if st.at(std::slice::from_ref(&name)).is_none() {
                push(&mut st, Op::CreateBucket(vec![name]));
            }
        }
    } else {
        let mut roots = roots;
        for _ in 0..4 + rng.below_usize(4) {
            if roots.is_empty() {
                break;
            }
            let name = roots.remove(rng.below_usize(roots.len()));
            push(&mut st, Op::DeleteBucket(vec![name]));
        }
    }
    ops
}
