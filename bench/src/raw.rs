//! The raw results of a run, kept as a text file next to a written report so that the report
//! can be re-rendered (`--from`) without measuring again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deadbolt_bench::Res;

pub type Results = BTreeMap<String, BTreeMap<String, f64>>;

pub type Measured = (Vec<String>, Results, BTreeMap<String, String>, bool);

pub fn raw_path(entries: u64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("results/raw-{entries}.txt"))
}

pub fn save_raw(path: &Path, m: &Measured) -> Res<()> {
    let mut s = String::new();
    for line in &m.0 {
        s.push_str(&format!("machine {line}\n"));
    }
    for (e, r) in &m.1 {
        for (k, v) in r {
            s.push_str(&format!("result {e} {k} {v}\n"));
        }
    }
    for (e, why) in &m.2 {
        s.push_str(&format!("failure {e} {why}\n"));
    }
    s.push_str(&format!("strace {}\n", u8::from(m.3)));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, s).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("raw results saved in {}", path.display());
    Ok(())
}

pub fn load_raw(path: &Path) -> Res<Measured> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut m: Measured = (Vec::new(), BTreeMap::new(), BTreeMap::new(), false);
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        match kind {
            "machine" => m.0.push(rest.to_string()),
            "result" => {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if let [e, k, v] = f[..] {
                    let v = v
                        .parse()
                        .map_err(|e| format!("{}: {line:?}: {e}", path.display()))?;
                    m.1.entry(e.to_string())
                        .or_default()
                        .insert(k.to_string(), v);
                }
            }
            "failure" => {
                let (e, why) = rest.split_once(' ').unwrap_or((rest, ""));
                m.2.insert(e.to_string(), why.to_string());
            }
            "strace" => m.3 = rest == "1",
            _ => return Err(format!("{}: unexpected line {line:?}", path.display()).into()),
        }
    }
    Ok(m)
}
