//! The report job: measure (or load the raw results of an earlier run), render the Markdown
//! report, print it, and write it to `--out` (replacing the file or appended as a section).

use std::path::Path;

use deadbolt_bench::Res;

use crate::args::Args;
use crate::measure::measure;
use crate::raw::{load_raw, raw_path, save_raw};
use crate::render::render;

/// Produce the report `a` asks for, measuring with the databases under `base`.
pub fn report(a: &Args, base: &Path) -> Res<()> {
    let m = match &a.from {
        Some(from) => load_raw(from)?,
        None => {
            let m = measure(a, base)?;
            // Keep the figures behind a written report so that it can be re-rendered.
            if a.out.is_some() {
                save_raw(&raw_path(a.entries), &m)?;
            }
            m
        }
    };
    let report = render(a, &m);
    println!("{report}");
    match &a.out {
        Some(out) => write_out(out, a.append, &report),
        None => Ok(()),
    }
}

/// Write `report` to `out`, replacing the file or, with `append`, after what it holds as a
/// further section (one heading level down, after a rule).
pub fn write_out(out: &Path, append: bool, report: &str) -> Res<()> {
    let report = if append {
        let before = std::fs::read_to_string(out)
            .map_err(|e| format!("reading {} to append to it: {e}", out.display()))?;
        format!("{before}\n---\n\n{}", as_section(report))
    } else {
        report.to_string()
    };
    std::fs::write(out, &report).map_err(|e| format!("writing {}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// A report one heading level down, to go under another one.
fn as_section(report: &str) -> String {
    report.replace("\n## ", "\n### ").replacen("# ", "## ", 1)
}
