//! `deadbolt bench`: a quick write/read benchmark in the spirit of `bbolt bench`.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deadbolt::{Db, Options};

use crate::error::{At, CliError, EXIT_DAMAGED};
use crate::util::{Ctx, Progress};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Keys in ascending order
    Seq,
    /// Keys in a scrambled (but reproducible) order
    Rnd,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of keys to write and read
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Keys written per transaction
    #[arg(long, default_value_t = 1_000)]
    pub batch_size: u64,
    /// Key size in bytes (at least 8)
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Order of the writes
    #[arg(long, value_enum, default_value_t = Order::Seq)]
    pub write_mode: Order,
    /// Order of the reads ("seq" iterates with a cursor, "rnd" looks keys up one by one)
    #[arg(long, value_enum, default_value_t = Order::Seq)]
    pub read_mode: Order,
    /// Do not sync on commit (a crash could lose the benchmark's data: it is a benchmark)
    #[arg(long)]
    pub no_sync: bool,
    /// Page size of the new file
    #[arg(long, default_value_t = deadbolt::DEFAULT_PAGE_SIZE)]
    pub page_size: usize,
    /// Write to this new file and keep it (default: a temporary file, removed afterwards)
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
}

const BUCKET: &[u8] = b"bench";

/// Key number `i` in the given order: a bijection on u64, so keys never collide.
fn key_num(i: u64, order: Order) -> u64 {
    match order {
        Order::Seq => i,
        Order::Rnd => {
            // SplitMix64's finalizer: invertible, so distinct inputs give distinct keys.
            let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }
}

/// A stride near 0.618 * n that is coprime with `n`, so that `j * stride mod n` visits every
/// index below `n` once.
fn coprime_stride(n: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut s = ((n as f64) * 0.618_033_988_75) as u64 | 1;
    while n > 1 && gcd(s, n) != 1 {
        s += 1;
    }
    s.max(1)
}

fn make_key(n: u64, size: usize) -> Vec<u8> {
    let mut k = vec![0u8; size];
    k[size - 8..].copy_from_slice(&n.to_be_bytes());
    k
}

fn report(out: &mut impl Write, what: &str, n: u64, d: Duration) -> std::io::Result<()> {
    let secs = d.as_secs_f64().max(1e-9);
    let per_op = if n == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(d.as_secs_f64() / n as f64)
    };
    writeln!(
        out,
        "# {what}\t{d:.3?}\t({per_op:.3?}/op)\t({:.0} op/sec)",
        n as f64 / secs
    )
}

pub fn run(a: Args, ctx: &Ctx) -> Result<(), CliError> {
    if a.key_size < 8 || a.key_size > deadbolt::MAX_KEY_SIZE {
        return Err(CliError::usage(format!(
            "--key-size must be from 8 to {}",
            deadbolt::MAX_KEY_SIZE
        )));
    }
    if a.batch_size == 0 {
        return Err(CliError::usage("--batch-size must be at least 1"));
    }
    match &a.path {
        Some(p) => {
            if p.exists() {
                return Err(CliError::usage(format!(
                    "{}: already exists; bench writes a new file",
                    p.display()
                )));
            }
            bench(&a, ctx, p)
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("deadbolt-bench-")
                .tempdir()
                .map_err(|e| {
                    CliError::cannot_run(format!("creating a temporary directory: {e}"))
                })?;
            let res = bench(&a, ctx, &tmp.path().join("bench.db"));
            match res {
                // A benchmark that found damage keeps its file for inspection.
                Err(mut e) if e.code == EXIT_DAMAGED => {
                    let kept = tmp.keep();
                    e.msg = format!("{} (file kept in {})", e.msg, kept.display());
                    Err(e)
                }
                other => other,
            }
        }
    }
}

fn bench(a: &Args, ctx: &Ctx, file: &Path) -> Result<(), CliError> {
    let db = Db::open_with(
        file,
        Options {
            page_size: a.page_size,
            no_sync: a.no_sync,
            ..Default::default()
        },
    )
    .at(file)?;
    let value = vec![0x42u8; a.value_size];

    // Writes, in batches of one transaction each.
    let progress = Progress::bar(ctx.progress, a.count, "write", false);
    let start = Instant::now();
    let mut i = 0u64;
    while i < a.count {
        let end = a.count.min(i.saturating_add(a.batch_size));
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(BUCKET)?;
            for j in i..end {
                b.put(&make_key(key_num(j, a.write_mode), a.key_size), &value)?;
            }
            Ok::<_, deadbolt::Error>(())
        })
        .at(file)?;
        progress.inc(end - i);
        i = end;
    }
    let write_time = start.elapsed();
    progress.finish();

    // Reads.
    let progress = Progress::bar(ctx.progress, a.count, "read", false);
    let start = Instant::now();
    let found = db
        .view(|tx| {
            let mut found = 0u64;
            let Some(b) = tx.bucket(BUCKET)? else {
                return Ok(0);
            };
            match a.read_mode {
                Order::Seq => {
                    for kv in b.iter() {
                        kv?;
                        found += 1;
                        progress.inc(1);
                    }
                }
                Order::Rnd => {
                    let stride = coprime_stride(a.count);
                    for j in 0..a.count {
                        // Visit 0..count in a scrambled order: j * stride mod count.
                        let idx = (u128::from(j) * u128::from(stride) % u128::from(a.count)) as u64;
                        let k = make_key(key_num(idx, a.write_mode), a.key_size);
                        if b.get(&k)?.is_some() {
                            found += 1;
                        }
                        progress.inc(1);
                    }
                }
            }
            Ok::<_, deadbolt::Error>(found)
        })
        .at(file)?;
    let read_time = start.elapsed();
    progress.finish();
    if found != a.count {
        return Err(CliError::damaged(format!(
            "{}: wrote {} keys but read back {found}",
            file.display(),
            a.count
        )));
    }

    let mut out = std::io::stdout().lock();
    report(&mut out, "Write", a.count, write_time)?;
    report(&mut out, "Read", a.count, read_time)?;
    if let Some(p) = &a.path {
        writeln!(out, "# kept {}", p.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stride_visits_every_index_once() {
        for n in [1u64, 2, 3, 10, 250, 1000, 1024, 9999] {
            let s = super::coprime_stride(n);
            let mut seen = vec![false; n as usize];
            for j in 0..n {
                seen[(j * s % n) as usize] = true;
            }
            assert!(seen.iter().all(|&x| x), "n={n} stride={s}");
        }
    }
}
