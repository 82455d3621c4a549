//! `deadbolt check FILE`: the engine's full integrity check.
//!
//! Exit status 0 when healthy, 1 when damaged, 2 when the check could not run. Damaged means
//! that something of a commit the file confirms durable fails to verify: the check reports a
//! problem, or open refuses the file (the engine never rolls a confirmed commit back, so
//! damage there stops the open with a corruption error, and that is a verdict, not a failure to
//! run). An *unconfirmed* newest commit that open rolled back is a note, not damage: a crash
//! during or right after that commit leaves it so, and the commit before it (which the file
//! confirms) is what was checked. `--strict` counts it as damage too.
//!
//! The verdict (`OK: ...` or `DAMAGED: ...`) is always the first line of the text output, and
//! for damage it names the first problem's page and detail, so that `check FILE | head -1`
//! (a log line, a monitoring probe) is enough.
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
    /// Also count as damage an unconfirmed newest commit that open rolled back (by default it
    /// is a note: it was never confirmed durable, as after a crash, and the file is consistent
    /// at the commit before it)
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
    /// What open found (`None` when open itself refused the file).
    recovery: Option<deadbolt::Recovery>,
    /// Open refused the file: the one problem is why.
    open_failed: bool,
}

impl Outcome {
    fn rolled_back(&self) -> Option<&deadbolt::RolledBack> {
        self.recovery.as_ref().and_then(|r| r.rolled_back.as_ref())
    }

    /// Healthy: no problem, and with `--strict` no rollback either.
    fn ok(&self, strict: bool) -> bool {
        self.problems.is_empty() && !(strict && self.rolled_back().is_some())
    }
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
        recovery: None,
        open_failed: false,
    };
    let outcome = match open_read_only_engine(file, ctx)? {
        Ok(db) => {
            // The engine reports the real total as it goes; the high-water mark is a start.
            let progress = Progress::bar(ctx.progress, db.stats().high_water, "check", false);
            let res = db.check_with_progress(&mut |done, total| progress.set(done, total));
            progress.finish();
            let recovery = Some(db.recovery().clone());
            match res {
                Ok(report) => Outcome {
                    problems: report.problems.clone(),
                    report: Some(report),
                    recovery,
                    open_failed: false,
                },
                Err(deadbolt::Error::Corruption { page, detail }) => Outcome {
                    recovery,
                    ..damaged(page, detail)
                },
                Err(e) => return Err(CliError::db(file, e)),
            }
        }
        // Open met damage in a commit the file confirms durable (it never rolls one back) or
        // found no valid meta page: a damaged file, not a failed check.
        Err(deadbolt::Error::Corruption { page, detail }) => Outcome {
            open_failed: true,
            ..damaged(page, detail)
        },
        Err(e) => return Err(check_bolt_hint(file, CliError::db(file, e))),
    };
    print(&a, &outcome);
    if outcome.ok(a.strict) {
        Ok(())
    } else if a.json {
        // JSON is for programs; a person watching the terminal still hears about it.
        let n = outcome.problems.len();
        Err(CliError::damaged(format!(
            "{}: database is damaged ({})",
            file.display(),
            match outcome.rolled_back() {
                Some(r) if n == 0 => format!("unconfirmed commit {} rolled back, --strict", r.txid),
                _ => format!("{n} problem{}", if n == 1 { "" } else { "s" }),
            }
        )))
    } else {
        Err(CliError::quiet(EXIT_DAMAGED))
    }
}

/// Someone who ran `check` on a bbolt file most likely wanted it checked: besides the
/// engine's pointer to `import-bolt`, name the command that checks it as it is.
fn check_bolt_hint(file: &std::path::Path, mut e: CliError) -> CliError {
    if e.msg.contains("bbolt") {
        e.msg.push_str(&format!(
            "; to check the bbolt file as it is, run `deadbolt check-bolt {}`",
            file.display()
        ));
    }
    e
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
        let rec = o.recovery.as_ref();
        let v = json!({
            "file": file,
            "ok": o.ok(a.strict),
            "problems": problems,
            "open_failed": o.open_failed,
            "txid": rec.map(|r| r.txid),
            "confirmed_txid": rec.map(|r| r.confirmed),
            "pages_total": r.map(|r| r.pages_total),
            "pages_reachable": r.map(|r| r.pages_reachable),
            "pages_free": r.map(|r| r.pages_free),
            "pages_pending": r.map(|r| r.pages_pending),
            "buckets": r.map(|r| r.buckets),
            "inline_buckets": r.map(|r| r.inline_buckets),
            "keys": r.map(|r| r.keys),
            "rolled_back": o.rolled_back().map(|r| json!({"txid": r.txid, "reason": r.reason})),
        });
        let _ = writeln!(out, "{v}");
        return;
    }
    let _ = write_text(&mut out, a, &file, o);
}

/// `page N (bucket B): detail`, the way every problem is shown.
fn problem_line(p: &Problem) -> String {
    if p.path.is_empty() {
        format!("page {}: {}", p.page, p.detail)
    } else {
        format!(
            "page {} (bucket {}): {}",
            p.page,
            display_path(&p.path),
            p.detail
        )
    }
}

fn write_text(out: &mut impl Write, a: &Args, file: &str, o: &Outcome) -> std::io::Result<()> {
    let counts = o.report.as_ref().map(|r| {
        format!(
            "{} pages ({} reachable, {} free, {} pending), {} buckets ({} inline), {} keys",
            r.pages_total,
            r.pages_reachable,
            r.pages_free,
            r.pages_pending,
            r.buckets,
            r.inline_buckets,
            r.keys
        )
    });
    let commit = o.recovery.as_ref().map(|r| {
        if r.confirmed >= r.txid {
            format!("commit {} (confirmed durable)", r.txid)
        } else {
            format!(
                "commit {} (confirmed durable up to {})",
                r.txid, r.confirmed
            )
        }
    });
    let summary = [commit, counts]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let n = o.problems.len();
    // The verdict first. `strict_rollback`: the verdict itself is the rollback, so the note
    // below would only repeat it.
    let mut strict_rollback = false;
    match (o.problems.first(), o.rolled_back()) {
        (None, Some(r)) if a.strict => {
            strict_rollback = true;
            writeln!(
                out,
                "DAMAGED: {file}: unconfirmed commit {} was rolled back at open (--strict): {}",
                r.txid, r.reason
            )?;
        }
        (None, _) if summary.is_empty() => writeln!(out, "OK: {file}")?,
        (None, _) => writeln!(out, "OK: {file}: {summary}")?,
        (Some(p), _) if o.open_failed => {
            writeln!(out, "DAMAGED: {file}: cannot open: {}", problem_line(p))?
        }
        (Some(p), _) if n == 1 => writeln!(out, "DAMAGED: {file}: {}", problem_line(p))?,
        (Some(p), _) => writeln!(
            out,
            "DAMAGED: {file}: {n} problems found, the first: {}",
            problem_line(p)
        )?,
    }
    // The full list when the first line could not hold it.
    if n > 1 {
        let limit = if a.max_problems == 0 {
            usize::MAX
        } else {
            a.max_problems
        };
        for p in o.problems.iter().take(limit) {
            writeln!(out, "{}", problem_line(p))?;
        }
        if n > limit {
            writeln!(out, "... and {} more", n - limit)?;
        }
    }
    // An OK verdict carries the summary; after damage it comes on a line of its own.
    if !o.ok(a.strict) && !summary.is_empty() {
        writeln!(out, "checked: {summary}")?;
    }
    if let (Some(r), false) = (o.rolled_back(), strict_rollback) {
        let at = o.recovery.as_ref().map_or(0, |r| r.txid);
        writeln!(
            out,
            "note: commit {} was never confirmed durable (a crash during or right after it?) \
             and was rolled back at open; commit {at} was checked instead: {}",
            r.txid, r.reason
        )?;
    }
    Ok(())
}
