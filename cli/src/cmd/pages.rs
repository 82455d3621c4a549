//! Raw page inspection: `pages` lists them, `page` shows one or more in detail.
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use deadbolt::PageInfo;
use serde_json::json;

use crate::error::{At, CliError, EXIT_DAMAGED};
use crate::util::{format_bytes, hex, open_read_only, ByteFormat, Ctx, Progress};

#[derive(clap::Args, Debug)]
pub struct PagesArgs {
    /// Database file
    pub file: PathBuf,
    /// Print one JSON object per page (JSON lines) instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct PageArgs {
    /// Database file
    pub file: PathBuf,
    /// Page ids
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<u64>,
    /// Print one JSON object per page instead of text
    #[arg(long)]
    pub json: bool,
    /// How to print the keys on branch and leaf pages
    #[arg(long, value_enum, default_value_t = ByteFormat::Auto)]
    pub format: ByteFormat,
}

fn page_json(p: &PageInfo) -> serde_json::Value {
    json!({
        "id": p.id,
        "kind": p.kind,
        "count": p.count,
        "overflow": p.overflow,
        "txid": p.txid,
        "checksum_ok": p.checksum_ok,
        "keys": p.keys.iter().map(|k| hex(k)).collect::<Vec<_>>(),
    })
}

pub fn pages(a: PagesArgs, ctx: &Ctx) -> Result<(), CliError> {
    let file = a.file.as_path();
    let db = open_read_only(file, ctx)?;
    let high_water = db.stats().high_water;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let progress = Progress::bar(ctx.progress_while_streaming(), high_water, "pages", false);
    if !a.json {
        writeln!(
            out,
            "{:<10} {:<10} {:>8} {:>8} {:>12} CHECKSUM",
            "ID", "KIND", "ITEMS", "OVERFLOW", "TXID"
        )?;
    }
    let mut failures = 0u64;
    let mut id = 0u64;
    while id < high_water {
        match db.page_info(id) {
            Ok(p) => {
                if a.json {
                    writeln!(out, "{}", page_json(&p))?;
                } else {
                    writeln!(
                        out,
                        "{:<10} {:<10} {:>8} {:>8} {:>12} {}",
                        p.id,
                        p.kind,
                        p.count,
                        p.overflow,
                        p.txid,
                        if p.checksum_ok { "ok" } else { "BAD" }
                    )?;
                }
                if !p.checksum_ok {
                    failures += 1;
                }
                // Continuation pages of a span are not listed. A page whose checksum failed
                // cannot be trusted about its span, so the next id is looked at anyway.
                let step = if p.checksum_ok {
                    p.overflow.saturating_add(1)
                } else {
                    1
                };
                progress.inc(step.min(high_water - id));
                id = id.saturating_add(step);
            }
            Err(e) => {
                failures += 1;
                out.flush()?;
                eprintln!("deadbolt: {}: page {id}: {e}", file.display());
                progress.inc(1);
                id += 1;
            }
        }
    }
    progress.finish();
    out.flush()?;
    if failures > 0 {
        eprintln!(
            "deadbolt: {}: {failures} page{} could not be verified",
            file.display(),
            if failures == 1 { "" } else { "s" }
        );
        return Err(CliError::quiet(EXIT_DAMAGED));
    }
    Ok(())
}

pub fn page(a: PageArgs, ctx: &Ctx) -> Result<(), CliError> {
    let file = a.file.as_path();
    let db = open_read_only(file, ctx)?;
    let high_water = db.stats().high_water;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut bad = 0usize;
    for (i, &id) in a.ids.iter().enumerate() {
        if id >= high_water {
            out.flush()?;
            return Err(CliError::damaged(format!(
                "{}: page {id} is beyond the high-water mark ({high_water} pages)",
                file.display()
            )));
        }
        let p = match db.page_info(id).at(file) {
            Ok(p) => p,
            Err(e) => {
                out.flush()?;
                return Err(e);
            }
        };
        if !p.checksum_ok {
            bad += 1;
        }
        if a.json {
            writeln!(out, "{}", page_json(&p))?;
            continue;
        }
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "Page:      {}", p.id)?;
        writeln!(out, "Kind:      {}", p.kind)?;
        writeln!(out, "Items:     {}", p.count)?;
        writeln!(out, "Overflow:  {}", p.overflow)?;
        writeln!(out, "Txid:      {}", p.txid)?;
        writeln!(
            out,
            "Checksum:  {}",
            if p.checksum_ok { "ok" } else { "BAD" }
        )?;
        if !p.keys.is_empty() {
            let more = if (p.keys.len() as u64) < p.count {
                format!(" (first {} of {})", p.keys.len(), p.count)
            } else {
                String::new()
            };
            writeln!(out, "Keys{more}:")?;
            for k in &p.keys {
                out.write_all(b"  ")?;
                out.write_all(&format_bytes(k, a.format))?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    if bad > 0 {
        return Err(CliError::damaged(format!(
            "{}: {bad} page{} failed checksum verification",
            file.display(),
            if bad == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}
