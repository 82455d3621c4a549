//! `deadbolt stats FILE [BUCKET...]`: per-bucket counts and fill factor.
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use deadbolt::{Bucket, BucketStats};
use serde_json::json;

use crate::error::{At, CliError};
use crate::util::{decode_args, display_path, find_bucket, hex, open_read_only, Ctx, Progress};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Database file
    pub file: PathBuf,
    /// Report only this bucket and the buckets nested in it (a path: top-level name first)
    pub bucket: Vec<OsString>,
    /// Bucket names are given in hex
    #[arg(long)]
    pub hex: bool,
    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Nesting deeper than this is taken for a cycle in a damaged file.
pub const MAX_NESTING: usize = 10_000;

/// Fill factor: bytes of keys and values over bytes of the pages holding them.
fn fill(s: &BucketStats) -> f64 {
    if s.bytes_allocated == 0 {
        0.0
    } else {
        s.bytes_used as f64 / s.bytes_allocated as f64
    }
}

pub fn run(a: Args, ctx: &Ctx) -> Result<(), CliError> {
    let start = decode_args(&a.bucket, a.hex)?;
    let whole = start.is_empty();
    let file = a.file.as_path();
    let db = open_read_only(file, ctx)?;
    let tx = db.begin_read().at(file)?;

    // Depth-first walk over (path, bucket), in key order.
    let mut stack: Vec<(Vec<Vec<u8>>, Bucket<'_>)> = Vec::new();
    if start.is_empty() {
        let mut tops = Vec::new();
        for name in tx.buckets() {
            let name = name.at(file)?.into_owned();
            let b = find_bucket(&tx, file, std::slice::from_ref(&name))?;
            tops.push((vec![name], b));
        }
        stack.extend(tops.into_iter().rev());
    } else {
        let b = find_bucket(&tx, file, &start)?;
        stack.push((start, b));
    }

    let progress = Progress::spinner(ctx.progress, "stats: buckets");
    let mut rows: Vec<(Vec<Vec<u8>>, BucketStats)> = Vec::new();
    while let Some((path, b)) = stack.pop() {
        if path.len() > MAX_NESTING {
            return Err(CliError::damaged(format!(
                "{}: database is damaged: buckets nested deeper than {MAX_NESTING} levels \
                 at {} (a cycle?)",
                file.display(),
                display_path(&path[..8])
            )));
        }
        let st = b.stats().at(file)?;
        let mut children = Vec::new();
        for name in b.buckets() {
            let name = name.at(file)?.into_owned();
            let child = b.bucket(&name).at(file)?.ok_or_else(|| {
                CliError::damaged(format!(
                    "{}: database is damaged: bucket {} lists nested bucket {} that cannot be opened",
                    file.display(),
                    display_path(&path),
                    crate::util::display(&name)
                ))
            })?;
            let mut p = path.clone();
            p.push(name);
            children.push((p, child));
        }
        stack.extend(children.into_iter().rev());
        rows.push((path, st));
        progress.inc(1);
    }
    progress.finish();

    // The engine's counts include nested buckets, so the top-level rows add up to the total.
    let total = whole.then(|| {
        let mut t = BucketStats::default();
        for (_, s) in rows.iter().filter(|(p, _)| p.len() == 1) {
            t.keys += s.keys;
            t.buckets += s.buckets + 1;
            t.depth = t.depth.max(s.depth);
            t.branch_pages += s.branch_pages;
            t.leaf_pages += s.leaf_pages;
            t.overflow_pages += s.overflow_pages;
            t.bytes_used += s.bytes_used;
            t.bytes_allocated += s.bytes_allocated;
            t.inline_buckets += s.inline_buckets;
        }
        t
    });

    let mut out = std::io::stdout().lock();
    if a.json {
        let row = |s: &BucketStats| {
            json!({
                "keys": s.keys,
                "buckets": s.buckets,
                "depth": s.depth,
                "branch_pages": s.branch_pages,
                "leaf_pages": s.leaf_pages,
                "overflow_pages": s.overflow_pages,
                "bytes_used": s.bytes_used,
                "bytes_allocated": s.bytes_allocated,
                "inline_buckets": s.inline_buckets,
                "fill": (fill(s) * 10000.0).round() / 10000.0,
            })
        };
        let buckets: Vec<_> = rows
            .iter()
            .map(|(p, s)| {
                let mut v = json!({
                    "path": p.iter().map(|n| hex(n)).collect::<Vec<_>>(),
                    "name": display_path(p),
                });
                if let (Some(o), serde_json::Value::Object(r)) = (v.as_object_mut(), row(s)) {
                    o.extend(r);
                }
                v
            })
            .collect();
        let mut v =
            json!({ "file": file.display().to_string(), "txid": tx.id(), "buckets": buckets });
        if let (Some(o), Some(t)) = (v.as_object_mut(), &total) {
            o.insert("total".into(), row(t));
        }
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(p, _)| display_path(p).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 60);
    writeln!(
        out,
        "{:<width$} {:>10} {:>7} {:>5} {:>7} {:>7} {:>8} {:>12} {:>12} {:>6}",
        "BUCKET",
        "KEYS",
        "NESTED",
        "DEPTH",
        "BRANCH",
        "LEAF",
        "OVERFLOW",
        "USED",
        "ALLOCATED",
        "FILL"
    )?;
    let print_row = |out: &mut std::io::StdoutLock<'_>, name: &str, s: &BucketStats| {
        writeln!(
            out,
            "{:<width$} {:>10} {:>7} {:>5} {:>7} {:>7} {:>8} {:>12} {:>12} {:>5.1}%",
            name,
            s.keys,
            s.buckets,
            s.depth,
            s.branch_pages,
            s.leaf_pages,
            s.overflow_pages,
            s.bytes_used,
            s.bytes_allocated,
            fill(s) * 100.0
        )
    };
    for (p, s) in &rows {
        print_row(&mut out, &display_path(p), s)?;
    }
    if rows.is_empty() {
        writeln!(out, "(no buckets)")?;
    } else if let Some(t) = &total {
        print_row(&mut out, "(total)", t)?;
    }
    Ok(())
}
