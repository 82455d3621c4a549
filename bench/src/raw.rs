//! The figures of a run ([`Measured`]) and their raw text file, kept next to a written report so
//! that the report can be re-rendered (`--from`) without measuring again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deadbolt_bench::Res;

/// Engine → metric → figure (the median over the runs).
pub type Results = BTreeMap<String, BTreeMap<String, f64>>;
/// Engine (or [`bucket_run`] of an engine) → why its run failed.
pub type Failures = BTreeMap<String, String>;

/// What marks an engine's bucket-workload child in [`Failures`].
const BUCKET_RUN: &str = "/buckets";

/// The key in [`Failures`] of `engine`'s bucket-workload child (the engine's own name is the
/// key of its main child).
pub fn bucket_run(engine: &str) -> String {
    format!("{engine}{BUCKET_RUN}")
}

/// The engine whose bucket-workload child `run` is, if it is one.
pub fn bucket_run_engine(run: &str) -> Option<&str> {
    run.strip_suffix(BUCKET_RUN)
}

/// Everything a report is rendered from.
#[derive(Debug, Default, PartialEq)]
pub struct Measured {
    /// The lines of the Machine section.
    pub machine: Vec<String>,
    pub results: Results,
    pub failures: Failures,
    /// Whether strace was installed (otherwise there are no sync counts).
    pub have_strace: bool,
}

/// Where a run of `entries` entries that writes a report keeps its raw results.
pub fn raw_path(entries: u64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("results/raw-{entries}.txt"))
}

/// `m` as the lines of a raw file: `machine LINE`, `result ENGINE METRIC VALUE`,
/// `failure ENGINE WHY` and `strace 0|1`.
fn to_text(m: &Measured) -> String {
    let mut s = String::new();
    for line in &m.machine {
        s.push_str(&format!("machine {line}\n"));
    }
    for (e, r) in &m.results {
        for (k, v) in r {
            s.push_str(&format!("result {e} {k} {v}\n"));
        }
    }
    for (e, why) in &m.failures {
        s.push_str(&format!("failure {e} {why}\n"));
    }
    s.push_str(&format!("strace {}\n", u8::from(m.have_strace)));
    s
}

/// Write `m` to `path` (creating its directory).
pub fn save_raw(path: &Path, m: &Measured) -> Res<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, to_text(m)).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("raw results saved in {}", path.display());
    Ok(())
}

/// Read back what [`save_raw`] wrote.
pub fn load_raw(path: &Path) -> Res<Measured> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    from_text(&text).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Parse the lines of a raw file.
fn from_text(text: &str) -> Res<Measured> {
    let mut m = Measured::default();
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "machine" => m.machine.push(rest.to_string()),
            "result" => {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if let [e, k, v] = f[..] {
                    let v = v.parse().map_err(|e| format!("{line:?}: {e}"))?;
                    m.results
                        .entry(e.to_string())
                        .or_default()
                        .insert(k.to_string(), v);
                }
            }
            "failure" => {
                let (e, why) = rest.split_once(' ').unwrap_or((rest, ""));
                m.failures.insert(e.to_string(), why.to_string());
            }
            "strace" => m.have_strace = rest == "1",
            _ => return Err(format!("unexpected line {line:?}").into()),
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_text_round_trips_and_the_saved_files_parse() {
        let mut m = Measured {
            machine: vec!["CPU: x, 2 hardware threads".into(), "Kernel: Linux".into()],
            have_strace: true,
            ..Measured::default()
        };
        m.results
            .entry("deadbolt".into())
            .or_default()
            .insert("bulk_load_ms".into(), 12.25);
        m.failures.insert(
            "sled".into(),
            "child process failed (exit status: 1)".into(),
        );
        assert_eq!(from_text(&to_text(&m)).unwrap(), m);
        for n in [100_000, 1_000_000] {
            let saved = std::fs::read_to_string(raw_path(n)).unwrap();
            assert_eq!(to_text(&from_text(&saved).unwrap()), saved, "raw-{n}.txt");
        }
        assert!(from_text("bogus line").is_err());
    }
}
