//! `deadbolt info FILE`: the database's vital numbers, and what open found: the newest commit
//! the file confirms durable (never rolled back), and an unconfirmed commit it did roll back.
//! Open read transactions are not in the file, so it says it cannot show another process's.
use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use crate::error::{At, CliError};
use crate::util::{open_read_only_engine, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Database file
    pub file: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// Why `info` cannot list another process's read transactions.
const READERS: &str = "Open readers:     not visible from another process: each process keeps \
its readers table in memory (a daemon reports its own with Db::stats().oldest_reader and \
Options::reader_limits)";

pub fn run(a: Args, ctx: &Ctx) -> Result<(), CliError> {
    // Not `open_read_only`: its note about a rollback on stderr would repeat what info prints.
    let db = open_read_only_engine(&a.file, ctx)?.at(&a.file)?;
    let s = db.stats();
    let rolled_back = db.recovery().rolled_back.clone();
    let mut out = std::io::stdout().lock();
    if a.json {
        let v = json!({
            "file": a.file.display().to_string(),
            "page_size": s.page_size,
            "format_version": s.format_version,
            "txid": s.txid,
            "confirmed_txid": s.confirmed_txid,
            "high_water": s.high_water,
            "file_size": s.file_size,
            "free_pages": s.free_pages,
            "pending_pages": s.pending_pages,
            "freelist_chain": s.freelist_chain,
            "depth": s.depth,
            "rolled_back": rolled_back.as_ref().map(|r| json!({"txid": r.txid, "reason": r.reason})),
            // The readers table is in the memory of each process that has the file open.
            "open_readers": "not visible from another process",
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let hw_bytes = s.high_water.saturating_mul(s.page_size as u64);
    writeln!(out, "File:             {}", a.file.display())?;
    writeln!(out, "Page size:        {}", s.page_size)?;
    writeln!(out, "Format version:   {}", s.format_version)?;
    writeln!(out, "Txid:             {}", s.txid)?;
    writeln!(out, "Confirmed txid:   {}", s.confirmed_txid)?;
    writeln!(
        out,
        "High-water mark:  {} pages ({hw_bytes} bytes)",
        s.high_water
    )?;
    writeln!(out, "File size:        {} bytes", s.file_size)?;
    writeln!(
        out,
        "Free pages:       {} ({} pending)",
        s.free_pages, s.pending_pages
    )?;
    writeln!(
        out,
        "Freelist chain:   {} record{}",
        s.freelist_chain,
        if s.freelist_chain == 1 { "" } else { "s" }
    )?;
    writeln!(out, "Tree depth:       {}", s.depth)?;
    writeln!(out, "{READERS}")?;
    if let Some(r) = rolled_back {
        writeln!(
            out,
            "Recovered:        commit {} was never confirmed durable and was rolled back at \
             open: {}",
            r.txid, r.reason
        )?;
    }
    Ok(())
}
