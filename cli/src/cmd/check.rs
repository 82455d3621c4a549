//! `deadbolt check FILE`: the engine's full integrity check.
//!
//! Exit status 0 when healthy, 1 when damaged (including a file whose every meta page is
//! damaged, so that it cannot even be opened), 2 when the check could not run.
use std::io::Write;
use std::path::PathBuf;

use deadbolt::{CheckReport, Problem};
use serde_json::json;

use crate::error::{CliError, EXIT_DAMAGED};
use crate::util::{display_path, hex, open_read_only_engine, Ctx, Progress};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Database file
    pub file: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// Also count a newer commit that open found torn or damaged and rolled back as damage
    /// (by default it is a note: the file is consistent at the commit before it)
    #[arg(long)]
    pub strict: bool,
    /// Print at most this many problems in text output (0: all)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_problems: usize,
}

/// The outcome: a full report, or the damage that stopped the check.
struct Outcome {
    problems: Vec<Problem>,
    report: Option<CheckReport>,
    rolled_back: Option<deadbolt::RolledBack>,
}

pub fn run(a: Args, ctx: &Ctx) -> Result<(), CliError> {
    let file = a.file.as_path();
    let damaged = |page: u64, detail: String| Outcome {
        problems: vec![Problem {
            page,
            path: Vec::new(),
            detail,
        }],
        report: None,
        rolled_back: None,
    };
    let outcome = match open_read_only_engine(file, ctx)? {
        Ok(db) => {
            // The engine reports the real total as it goes; the high-water mark is a start.
            let progress = Progress::bar(ctx.progress, db.stats().high_water, "check", false);
            let res = db.check_with_progress(&mut |done, total| progress.set(done, total));
            progress.finish();
            let rolled_back = db.recovery().rolled_back.clone();
            match res {
                Ok(report) => Outcome {
                    problems: report.problems.clone(),
                    report: Some(report),
                    rolled_back,
                },
                Err(deadbolt::Error::Corruption { page, detail }) => Outcome {
                    rolled_back,
                    ..damaged(page, detail)
                },
                Err(e) => return Err(CliError::db(file, e)),
            }
        }
        // Open found damage it could not recover from: a damaged file, not a failed check.
        Err(deadbolt::Error::Corruption { page, detail }) => {
            damaged(page, format!("cannot open: {detail}"))
        }
        Err(e) => return Err(CliError::db(file, e)),
    };
    print(&a, &outcome);
    if outcome.problems.is_empty() && !(a.strict && outcome.rolled_back.is_some()) {
        Ok(())
    } else if a.json {
        // JSON is for programs; a person watching the terminal still hears about it.
        let n = outcome.problems.len();
        Err(CliError::damaged(format!(
            "{}: database is damaged ({})",
            file.display(),
            if n == 0 {
                "newest commit rolled back".to_string()
            } else {
                format!("{n} problem{}", if n == 1 { "" } else { "s" })
            }
        )))
    } else {
        Err(CliError::quiet(EXIT_DAMAGED))
    }
}

/// Print the outcome. Write errors (a closed pipe) are ignored: the exit status still tells.
fn print(a: &Args, o: &Outcome) {
    let mut out = std::io::stdout().lock();
    let file = a.file.display().to_string();
    if a.json {
        let problems: Vec<_> = o
            .problems
            .iter()
            .map(|p| {
                json!({
                    "page": p.page,
                    "path": p.path.iter().map(|n| hex(n)).collect::<Vec<_>>(),
                    "detail": p.detail,
                })
            })
            .collect();
        let r = o.report.as_ref();
        let v = json!({
            "file": file,
            "ok": o.problems.is_empty() && !(a.strict && o.rolled_back.is_some()),
            "problems": problems,
            "pages_total": r.map(|r| r.pages_total),
            "pages_reachable": r.map(|r| r.pages_reachable),
            "pages_free": r.map(|r| r.pages_free),
            "pages_pending": r.map(|r| r.pages_pending),
            "buckets": r.map(|r| r.buckets),
            "keys": r.map(|r| r.keys),
            "rolled_back": o.rolled_back.as_ref().map(|r| json!({"txid": r.txid, "reason": r.reason})),
        });
        let _ = writeln!(out, "{v}");
        return;
    }
    let _ = write_text(&mut out, a, &file, o);
}

fn write_text(out: &mut impl Write, a: &Args, file: &str, o: &Outcome) -> std::io::Result<()> {
    if let Some(r) = &o.rolled_back {
        writeln!(
            out,
            "note: commit {} was found incomplete or damaged and rolled back at open: {}",
            r.txid, r.reason
        )?;
    }
    let limit = if a.max_problems == 0 {
        usize::MAX
    } else {
        a.max_problems
    };
    for p in o.problems.iter().take(limit) {
        if p.path.is_empty() {
            writeln!(out, "page {}: {}", p.page, p.detail)?;
        } else {
            writeln!(
                out,
                "page {} (bucket {}): {}",
                p.page,
                display_path(&p.path),
                p.detail
            )?;
        }
    }
    if o.problems.len() > limit {
        writeln!(out, "... and {} more", o.problems.len() - limit)?;
    }
    let counts = o.report.as_ref().map(|r| {
        format!(
            "{} pages ({} reachable, {} free, {} pending), {} buckets, {} keys",
            r.pages_total, r.pages_reachable, r.pages_free, r.pages_pending, r.buckets, r.keys
        )
    });
    match (o.problems.len(), counts) {
        (0, Some(c)) if a.strict && o.rolled_back.is_some() => writeln!(
            out,
            "DAMAGED: {file}: the newest commit was rolled back (--strict); {c}"
        )?,
        (0, Some(c)) => writeln!(out, "OK: {file}: {c}")?,
        (0, None) => writeln!(out, "OK: {file}")?,
        (n, c) => writeln!(
            out,
            "DAMAGED: {file}: {n} problem{} found{}",
            if n == 1 { "" } else { "s" },
            c.map(|c| format!("; {c}")).unwrap_or_default()
        )?,
    }
    Ok(())
}
