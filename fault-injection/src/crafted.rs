//! Crafted corruption that random bit rot cannot produce (F15): a branch page whose child
//! pointer names the page itself, with every checksum on the path recomputed so that the page,
//! its parent and the meta all verify. Only a depth bound or a cycle check stops a descent.
//!
//! The byte offsets follow the engine's page format (docs/FORMAT.md): a 32-byte page header
//! (crc32 of bytes 4.. at 0, type at 4, count at 6, id at 8, txid at 16, overflow at 24);
//! leaf elements of 16 bytes (flags, key offset, key length, value length), branch elements of
//! 32 bytes starting with the child pointer (id, txid, crc); the meta's root pointer at 80.

fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn rd64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn wr32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn wr64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

fn span_crc(span: &[u8]) -> u32 {
    crc32fast::hash(&span[4..])
}

/// Solve for the 32-bit value `x` stored at `pos` in `span` such that `span_crc(span) == x`
/// (a page that contains its own checksum). CRC-32 is affine in its input, so this is a 32x32
/// linear system over GF(2). Returns false when it has no solution.
fn solve_fixed_point(span: &mut [u8], pos: usize) -> bool {
    wr32(span, pos, 0);
    let c0 = span_crc(span);
    // Columns of L: the change in the crc caused by each bit of x.
    let mut cols = [0u32; 32];
    for (j, col) in cols.iter_mut().enumerate() {
        wr32(span, pos, 1 << j);
        *col = span_crc(span) ^ c0;
    }
    // (I ^ L) x = c0. Rows as bitmasks over the 32 unknowns, with the right-hand side in bit 32.
    let mut rows: Vec<u64> = (0..32)
        .map(|i| {
            let mut r = 0u64;
            for (j, col) in cols.iter().enumerate() {
                let bit = ((col >> i) & 1) ^ u32::from(i == j);
                r |= (bit as u64) << j;
            }
            r | (((c0 >> i) & 1) as u64) << 32
        })
        .collect();
    let mut where_ = [usize::MAX; 32];
    let mut row = 0;
    for (col, w) in where_.iter_mut().enumerate() {
        let Some(p) = (row..32).find(|&r| rows[r] >> col & 1 == 1) else {
            continue;
        };
        rows.swap(row, p);
        for r in 0..32 {
            if r != row && rows[r] >> col & 1 == 1 {
                rows[r] ^= rows[row];
            }
        }
        *w = row;
        row += 1;
    }
    if rows[row..].iter().any(|r| r >> 32 & 1 == 1) {
        return false;
    }
    let mut x = 0u32;
    for (col, &r) in where_.iter().enumerate() {
        if r != usize::MAX && rows[r] >> 32 & 1 == 1 {
            x |= 1 << col;
        }
    }
    wr32(span, pos, x);
    span_crc(span) == x
}

fn newest_meta(img: &[u8], page: usize) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for slot in 0..2 {
        let off = slot * page;
        let m = img.get(off..off + page)?;
        if rd64(m, 32) != 0 && span_crc(m) == rd32(m, 0) {
            let txid = rd64(m, 56);
            if best.is_none_or(|(t, _)| txid > t) {
                best = Some((txid, off));
            }
        }
    }
    best.map(|(_, o)| o)
}

/// Make the root of top-level bucket `bucket` (which must be a branch page written before the
/// newest commit's durable base) point at itself. Returns a description of what was done.
pub fn self_cycle(img: &mut [u8], page: usize, bucket: &[u8]) -> Result<(u64, String), String> {
    let meta = newest_meta(img, page).ok_or("no valid meta")?;
    let leaf_id = rd64(img, meta + 80) as usize;
    let leaf = leaf_id * page;
    if img[leaf + 4] != 3 {
        return Err("root bucket page is not a leaf (too many buckets for this crafter)".into());
    }
    let leaf_span = (1 + rd32(img, leaf + 24) as usize) * page;
    let count = u16::from_le_bytes([img[leaf + 6], img[leaf + 7]]) as usize;
    let mut hdr = None;
    for i in 0..count {
        let e = leaf + 32 + i * 16;
        let (ko, kl) = (rd32(img, e + 4) as usize, rd32(img, e + 8) as usize);
        if &img[leaf + ko..leaf + ko + kl] == bucket {
            hdr = Some(leaf + ko + kl);
        }
    }
    let hdr = hdr.ok_or("bucket not found in the root leaf")?;
    let r_id = rd64(img, hdr) as usize;
    let r = r_id * page;
    if img[r + 4] != 2 || rd32(img, r + 24) != 0 {
        return Err("bucket root is not a single-page branch".into());
    }
    let r_txid = rd64(img, r + 16);
    // Element 0's child pointer -> the page itself, with its own checksum.
    let e0 = r + 32;
    wr64(img, e0, r_id as u64);
    wr64(img, e0 + 8, r_txid);
    let span = &mut img[r..r + page];
    if !solve_fixed_point(span, 32 + 16) {
        return Err("no CRC fixed point for this page".into());
    }
    let c = rd32(span, 32 + 16);
    wr32(span, 0, c);
    // The bucket header in the root leaf records the new checksum; reseal the leaf.
    wr32(img, hdr + 16, c);
    let lc = span_crc(&img[leaf..leaf + leaf_span]);
    wr32(img, leaf, lc);
    // The meta's root pointer records the leaf's new checksum; reseal the meta.
    wr32(img, meta + 80 + 16, lc);
    let mc = span_crc(&img[meta..meta + page]);
    wr32(img, meta, mc);
    Ok((
        r_id as u64,
        format!("page {r_id} (txid {r_txid}) now lists itself as child 0 with checksum {c:#010x}; meta at {meta} resealed"),
    ))
}

/// Build a small database whose bucket `b` has a branch root written before the newest commit's
/// durable base, craft the self-cycle into it, and check that the engine reports corruption on
/// open, iteration, lookup and check. `Ok` describes the detection; `Err` is an I7 violation.
/// (A missing depth bound or cycle check shows as a hang or runaway allocation instead: run
/// this in a child process under a budget, as `fault-injection crafted-cycle` does.)
pub fn crafted_cycle_check(page: usize) -> Result<String, String> {
    use deadbolt::{Db, MemStorage, Options};
    use std::sync::Arc;
    let opts = Options {
        page_size: page,
        ..Options::default()
    };
    let mut img = two_commits(&opts)?;
    let (cyclic, what) = self_cycle(&mut img, page, b"b")?;
    let db = match Db::open_storage(Arc::new(MemStorage::from_bytes(img)), opts) {
        Err(e) if e.is_corruption() => return Ok(format!("{what}; open reported: {e}")),
        Err(e) => {
            return Err(format!(
                "{what}; open failed with a non-corruption error: {e}"
            ))
        }
        Ok(db) => db,
    };
    let mut found = Vec::new();
    let iter = db.view(|tx| {
        let b = tx.bucket(b"b")?.ok_or(deadbolt::Error::BucketNotFound)?;
        let mut n = 0u64;
        for item in b.iter() {
            item?;
            n += 1;
        }
        Ok::<u64, deadbolt::Error>(n)
    });
    // I7: the error must name the damaged page, not just give up somewhere.
    match iter {
        Err(deadbolt::Error::Corruption { page, detail }) if page == cyclic => {
            found.push(format!("iteration: page {page}: {detail}"))
        }
        Err(e @ deadbolt::Error::Corruption { .. }) => {
            return Err(format!(
                "{what}; iteration reported corruption without naming page {cyclic}: {e} (no cycle check or depth bound?)"
            ))
        }
        Err(e) => return Err(format!("{what}; iteration failed with a non-corruption error: {e}")),
        Ok(n) => return Err(format!("{what}; iteration returned {n} entries without an error")),
    }
    let get = db.view(|tx| {
        let b = tx.bucket(b"b")?.ok_or(deadbolt::Error::BucketNotFound)?;
        b.get(b"key00000").map(|v| v.map(|v| v.len()))
    });
    match get {
        Err(e) if e.is_corruption() => found.push(format!("lookup: {e}")),
        Ok(_) => {} // a lookup may avoid the cycle (it descends by key)
        Err(e) => {
            return Err(format!(
                "{what}; lookup failed with a non-corruption error: {e}"
            ))
        }
    }
    match db.check() {
        Ok(r) if !r.is_ok() => found.push(format!("check: {}", r.problems[0].detail)),
        Ok(_) => return Err(format!("{what}; check found no problem")),
        Err(e) if e.is_corruption() => found.push(format!("check: {e}")),
        Err(e) => return Err(format!("{what}; check failed: {e}")),
    }
    Ok(format!("{what}; {}", found.join("; ")))
}

/// The file of a small database: bucket `b` with enough keys for a branch root, then a second
/// commit (to bucket `z`) so that `b`'s root was written before the newest commit's base.
fn two_commits(opts: &deadbolt::Options) -> Result<Vec<u8>, String> {
    use deadbolt::{Db, MemStorage};
    use std::sync::Arc;
    let page = opts.page_size;
    let mem = Arc::new(MemStorage::new());
    let db = Db::open_storage(mem.clone(), opts.clone()).map_err(|e| e.to_string())?;
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"b")?;
        for i in 0..(page / 16) {
            b.put(format!("key{i:05}").as_bytes(), &[i as u8; 40])?;
        }
        Ok::<_, deadbolt::Error>(())
    })
    .map_err(|e| e.to_string())?;
    db.update(|tx| tx.create_bucket_if_not_exists(b"z")?.put(b"k", b"v"))
        .map_err(|e| e.to_string())?;
    drop(db);
    Ok(mem.to_bytes())
}
