//! The peer comparison: runs every workload on every engine, each engine in its own child
//! process (so peak memory does not mix), counts sync calls per durable commit with strace, and
//! writes a Markdown report.
//!
//! ```sh
//! cargo run --release -p deadbolt-bench -- --entries 1000000 --out docs/BENCHMARKS.md
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use deadbolt_bench::{engine_names, key, open, peak_rss_kib, Engine, Res, Rng, KEY_LEN};

const QUICK_ENTRIES: u64 = 100_000;
const INDIVIDUAL_COMMITS: u64 = 1_000;
const BATCH_SIZE: u64 = 1_000;
const SCAN_LEN: usize = 100;
const PROBE_COMMITS: u64 = 100;

struct Args {
    entries: u64,
    runs: usize,
    timeout: u64,
    out: Option<PathBuf>,
    engines: Vec<String>,
    engines_given: bool,
    dir: Option<PathBuf>,
    child: Option<String>,
    duel: bool,
    append: bool,
    from: Option<PathBuf>,
    probe: Option<(String, u64)>,
}

fn usage() -> String {
    format!(
        "usage: deadbolt-bench [--entries N] [--runs R] [--out FILE.md] [--engines a,b,..] [--dir DIR]\n\
         \x20 --entries N   entries in the bulk load (default {QUICK_ENTRIES}; the published table uses 1000000)\n\
         \x20 --runs R      run every engine R times, interleaved, and report medians (default 1)\n\
         \x20 --timeout S   stop an engine's run after S seconds and report what it finished (default 300)\n\
         \x20 --out FILE    write the Markdown report there (it is always printed)\n\
         \x20 --engines     subset of: {}\n\
         \x20 --dir DIR     where the databases go (default: the system temp dir; must not be tmpfs)\n\
         \x20 --append      append the report to --out as a further section (no notes), instead of replacing it\n\
         \x20 --from FILE   re-render the report from the raw results a run saved (bench/results/raw-N.txt)",
        engine_names().join(",")
    )
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        entries: QUICK_ENTRIES,
        runs: 1,
        timeout: 300,
        out: None,
        engines: engine_names().iter().map(|s| s.to_string()).collect(),
        engines_given: false,
        dir: None,
        child: None,
        duel: false,
        append: false,
        from: None,
        probe: None,
    };
    let mut it = std::env::args().skip(1);
    let mut commits = PROBE_COMMITS;
    let mut probe = None;
    while let Some(arg) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--entries" => {
                a.entries = val()?.parse().map_err(|e| format!("--entries: {e}"))?;
                if a.entries < 10_000 {
                    return Err("--entries must be at least 10000".into());
                }
            }
            "--runs" => {
                a.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?;
                a.runs = a.runs.max(1);
            }
            "--timeout" => a.timeout = val()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            "--out" => a.out = Some(val()?.into()),
            "--engines" => {
                a.engines = val()?.split(',').map(str::to_string).collect();
                a.engines_given = true;
            }
            "--dir" => a.dir = Some(val()?.into()),
            "--child" => a.child = Some(val()?),
            "--probe" => probe = Some(val()?),
            "--duel" => a.duel = true,
            "--append" => a.append = true,
            "--from" => a.from = Some(val()?.into()),
            "--commits" => commits = val()?.parse().map_err(|e| format!("--commits: {e}"))?,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage()).into()),
        }
    }
    a.probe = probe.map(|p| (p, commits));
    for e in &a.engines {
        if !engine_names().contains(&e.as_str()) && e != GO_ENGINE {
            return Err(format!("engine {e:?} is not built (built: {:?})", engine_names()).into());
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let run = || -> Res<()> {
        let a = parse_args()?;
        let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
        if let Some((engine, commits)) = &a.probe {
            return probe(engine, *commits, &base);
        }
        if a.duel {
            return duel(&a.engines, a.entries, &base);
        }
        if let Some(engine) = &a.child {
            return child(engine, a.entries, &base);
        }
        parent(&a, &base)
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deadbolt-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn emit(name: &str, v: f64) {
    println!("RESULT {name} {v}");
    eprintln!("  {name} = {v:.1}");
}

fn random_keys(seed: u64, n: u64, below: u64) -> Vec<[u8; KEY_LEN]> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| key(r.below(below))).collect()
}

/// Run every workload on one engine and print `RESULT name value` lines.
fn child(name: &str, n: u64, base: &Path) -> Res<()> {
    let tmp = tempfile::Builder::new()
        .prefix("deadbolt-bench-")
        .tempdir_in(base)
        .map_err(|e| format!("creating a temp dir in {}: {e}", base.display()))?;
    let dir = tmp.path().join("db");
    let db: Box<dyn Engine> = open(name, &dir)?;
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get()) as u64;

    let t = Instant::now();
    db.write(0..n)?;
    emit("bulk_load_ms", t.elapsed().as_secs_f64() * 1e3);

    let syncs0 = db.syncs();
    let mut next = n;
    let t = Instant::now();
    for _ in 0..INDIVIDUAL_COMMITS {
        db.write(next..next + 1)?;
        next += 1;
    }
    emit(
        "individual_per_s",
        INDIVIDUAL_COMMITS as f64 / t.elapsed().as_secs_f64(),
    );
    if let (Some(a), Some(b)) = (syncs0, db.syncs()) {
        emit(
            "engine_syncs_per_commit",
            (b - a) as f64 / INDIVIDUAL_COMMITS as f64,
        );
    }

    let batches = (n / 10_000).max(10);
    let t = Instant::now();
    for _ in 0..batches {
        db.write(next..next + BATCH_SIZE)?;
        next += BATCH_SIZE;
    }
    emit("batch_ms", t.elapsed().as_secs_f64() * 1e3);

    let reads = random_keys(1, n, n);
    let t = Instant::now();
    let found = db.get(&reads)?;
    emit("reads_1t_per_s", n as f64 / t.elapsed().as_secs_f64());
    if found != n {
        return Err(format!("{name}: found {found} of {n} keys").into());
    }

    let per_thread: Vec<_> = (0..threads).map(|t| random_keys(100 + t, n, n)).collect();
    let t = Instant::now();
    let found: Res<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = per_thread
            .iter()
            .map(|keys| {
                let db: &dyn Engine = &*db;
                s.spawn(move || db.get(keys))
            })
            .collect();
        let mut total = 0;
        for h in hs {
            total += h.join().map_err(|_| "reader thread panicked")??;
        }
        Ok(total)
    });
    emit(
        "reads_nt_per_s",
        (n * threads) as f64 / t.elapsed().as_secs_f64(),
    );
    if found? != n * threads {
        return Err(format!("{name}: multi-threaded reads missed keys").into());
    }
    emit("threads", threads as f64);
    drop(per_thread);

    let starts = random_keys(2, (n / 100).max(100), n);
    let t = Instant::now();
    let scanned = db.scan(&starts, SCAN_LEN)?;
    emit(
        "scan_entries_per_s",
        scanned as f64 / t.elapsed().as_secs_f64(),
    );

    let nested = n / 10;
    db.nested_write(0..nested)?;
    let mut r = Rng::new(3);
    let idx: Vec<u64> = (0..n).map(|_| r.below(nested)).collect();
    let t = Instant::now();
    let found = db.nested_get(&idx)?;
    emit("nested_reads_per_s", n as f64 / t.elapsed().as_secs_f64());
    if found != n {
        return Err(format!("{name}: nested reads found {found} of {n}").into());
    }
    emit("nested_native", f64::from(u8::from(db.nested_native())));

    let t = Instant::now();
    db.remove(0..n / 2)?;
    emit("removals_ms", t.elapsed().as_secs_f64() * 1e3);

    emit("size_bytes", deadbolt_bench::dir_size(&dir)? as f64);
    let cdir = tmp.path().join("compact");
    std::fs::create_dir_all(&cdir)?;
    match db.compact(&cdir) {
        Ok(Some(size)) => emit("compacted_bytes", size as f64),
        Ok(None) => {}
        Err(e) => eprintln!("  {name}: compaction failed: {e}"),
    }
    if let Some(kib) = peak_rss_kib() {
        emit("peak_rss_kib", kib as f64);
    }
    Ok(())
}

/// Go bbolt, run through bench/go/bboltbench.go when a Go toolchain is installed.
const GO_ENGINE: &str = "bbolt-go";
/// The environment variable that hands the built Go program to child processes.
const GO_ENV: &str = "DEADBOLT_BENCH_GO";

fn go_bin() -> Option<PathBuf> {
    std::env::var_os(GO_ENV).map(PathBuf::from)
}

/// Build the Go program against Debian's packaged bbolt (GOPATH mode); `None` without `go`.
fn build_go(dir: &Path) -> Option<PathBuf> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/go/bboltbench.go");
    let bin = dir.join("bboltbench");
    let gopath = std::env::var("GOPATH").unwrap_or_else(|_| "/usr/share/gocode".into());
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(src)
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .status();
    match status {
        Ok(st) if st.success() => Some(bin),
        Ok(st) => {
            eprintln!("building {src} failed ({st}); Go bbolt is left out");
            None
        }
        Err(_) => None,
    }
}

/// One engine in the interleaved commit run.
enum Duelist {
    Rust(Box<dyn Engine>),
    Go(
        std::process::Child,
        std::io::BufReader<std::process::ChildStdout>,
    ),
}

const DUEL_ROUNDS: u64 = 10;
const DUEL_COMMITS: u64 = 100;
const DUEL_ENTRIES: u64 = 100_000;

/// Individual durable commits on all engines in one process, interleaved in rounds, so that the
/// shared device's sync latency (which drifts by 10x over minutes here) hits every engine alike.
fn duel(engines: &[String], n: u64, base: &Path) -> Res<()> {
    let tmp = tempfile::Builder::new()
        .prefix("deadbolt-duel-")
        .tempdir_in(base)?;
    use std::io::{BufRead, Write};
    let load = n.min(DUEL_ENTRIES);
    let mut dbs = Vec::new();
    for e in engines {
        let d = if e == GO_ENGINE {
            let bin = go_bin().ok_or("the Go program was not built")?;
            let dir = tmp.path().join(e);
            std::fs::create_dir_all(&dir)?;
            let mut child = Command::new(bin)
                .arg("duel")
                .arg(load.to_string())
                .arg(&dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            let mut out = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
            let mut line = String::new();
            out.read_line(&mut line)?;
            if line.trim() != "ready" {
                return Err(format!("Go bbolt duel: unexpected {line:?}").into());
            }
            Duelist::Go(child, out)
        } else {
            let db = open(e, &tmp.path().join(e))?;
            db.write(0..load)?;
            Duelist::Rust(db)
        };
        dbs.push((e, d, 0f64));
    }
    let mut next = load;
    for _ in 0..DUEL_ROUNDS {
        for (_, d, secs) in dbs.iter_mut() {
            match d {
                Duelist::Rust(db) => {
                    let t = Instant::now();
                    for i in next..next + DUEL_COMMITS {
                        db.write(i..i + 1)?;
                    }
                    *secs += t.elapsed().as_secs_f64();
                }
                Duelist::Go(child, out) => {
                    let stdin = child.stdin.as_mut().ok_or("no stdin")?;
                    writeln!(stdin)?;
                    stdin.flush()?;
                    let mut line = String::new();
                    out.read_line(&mut line)?;
                    *secs += line
                        .trim()
                        .parse::<f64>()
                        .map_err(|e| format!("Go bbolt duel: {line:?}: {e}"))?;
                }
            }
        }
        next += DUEL_COMMITS;
    }
    for (e, d, secs) in dbs {
        println!("DUEL {e} {}", (DUEL_ROUNDS * DUEL_COMMITS) as f64 / secs);
        if let Duelist::Go(mut child, _) = d {
            drop(child.stdin.take());
            child.wait()?;
        }
    }
    Ok(())
}

/// Open a fresh database and make `commits` durable single-key commits: run under strace.
fn probe(name: &str, commits: u64, base: &Path) -> Res<()> {
    let tmp = tempfile::Builder::new()
        .prefix("deadbolt-probe-")
        .tempdir_in(base)?;
    let db = open(name, &tmp.path().join("db"))?;
    db.write(0..100)?;
    for i in 0..commits {
        db.write(1_000 + i..1_001 + i)?;
    }
    Ok(())
}

/// Run `cmd` with its stdout captured; `None` for the status if it ran past `secs` and was killed.
fn run_with_timeout(
    mut cmd: Command,
    secs: u64,
) -> std::io::Result<(String, Option<std::process::ExitStatus>)> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let mut pipe = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        pipe.read_to_string(&mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed().as_secs() >= secs {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let out = reader
        .join()
        .map_err(|_| std::io::Error::other("stdout reader panicked"))??;
    Ok((out, status))
}

const SYNC_CALLS: &str = "fsync,fdatasync,msync,sync_file_range,syncfs";

/// Sync system calls of one probe run, by strace -c.
fn strace_syncs(exe: &Path, engine: &str, commits: u64, base: &Path) -> Res<u64> {
    let out = tempfile::NamedTempFile::new()?;
    let dir = tempfile::Builder::new()
        .prefix("deadbolt-probe-")
        .tempdir_in(base)?;
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-c", "-e", &format!("trace={SYNC_CALLS}"), "-o"])
        .arg(out.path());
    if engine == GO_ENGINE {
        let bin = go_bin().ok_or("the Go program was not built")?;
        cmd.arg(bin)
            .arg("probe")
            .arg(commits.to_string())
            .arg(dir.path());
    } else {
        cmd.arg(exe)
            .args([
                "--probe",
                engine,
                "--commits",
                &commits.to_string(),
                "--dir",
            ])
            .arg(dir.path());
    }
    let status = cmd.status().map_err(|e| format!("running strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace probe of {engine} failed: {status}").into());
    }
    let text = std::fs::read_to_string(out.path())?;
    let mut total = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 && SYNC_CALLS.split(',').any(|c| c == f[f.len() - 1]) {
            total += f[3].parse::<u64>().unwrap_or(0);
        }
    }
    Ok(total)
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine(base: &Path) -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("unknown".into(), |k| format!("{} GiB", k / (1 << 20)));
    let threads = std::thread::available_parallelism().map_or(0, |p| p.get());
    vec![
        format!("CPU: {cpu}, {threads} hardware threads; RAM: {mem}"),
        format!("Kernel: {}", sh("uname", &["-sr"])),
        format!(
            "Database directory: `{}` on {} (real files; syncs reach the device)",
            base.display(),
            sh(
                "findmnt",
                &["-n", "-o", "FSTYPE", "-T", &base.to_string_lossy()]
            )
        ),
        format!("Toolchain: {}", sh("rustc", &["-V"])),
        format!(
            "Load average when the run started: {}",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ]
}

type Results = BTreeMap<String, BTreeMap<String, f64>>;

struct Row {
    label: String,
    metric: &'static str,
    unit: &'static str,
    higher_better: bool,
    scale: f64,
}

fn raw_path(entries: u64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("results/raw-{entries}.txt"))
}

fn parent(a: &Args, base: &Path) -> Res<()> {
    let (machine, results, failures, have_strace) = match &a.from {
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
    let report = render(a, &machine, &results, &failures, have_strace);
    println!("{report}");
    if let Some(out) = &a.out {
        let report = if a.append {
            let before = std::fs::read_to_string(out)
                .map_err(|e| format!("reading {} to append to it: {e}", out.display()))?;
            format!(
                "{before}\n---\n\n{}",
                report.replace("\n## ", "\n### ").replacen("# ", "## ", 1)
            )
        } else {
            report
        };
        std::fs::write(out, &report).map_err(|e| format!("writing {}: {e}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

type Measured = (Vec<String>, Results, BTreeMap<String, String>, bool);

fn save_raw(path: &Path, m: &Measured) -> Res<()> {
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

fn load_raw(path: &Path) -> Res<Measured> {
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

fn measure(a: &Args, base: &Path) -> Res<Measured> {
    let exe = std::env::current_exe()?;
    let mut machine = machine(base);
    // Go bbolt joins when `go` is installed (and no --engines list left it out).
    let go_dir = tempfile::tempdir()?;
    let mut engines = a.engines.clone();
    if !a.engines_given || engines.iter().any(|e| e == GO_ENGINE) {
        match build_go(go_dir.path()) {
            Some(bin) => {
                // Set before this process starts any thread; the children inherit it.
                std::env::set_var(GO_ENV, &bin);
                if !engines.iter().any(|e| e == GO_ENGINE) {
                    engines.push(GO_ENGINE.into());
                }
                machine.push(format!("Go bbolt: {}", sh("go", &["version"])));
            }
            None => engines.retain(|e| e != GO_ENGINE),
        }
    }
    let engines = &engines;
    let mut results: Results = BTreeMap::new();
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    // Rounds interleave the engines so that a change in the machine's load hits them alike.
    let mut timed_out: Vec<String> = Vec::new();
    for round in 1..=a.runs {
        for engine in engines {
            if timed_out.contains(engine) {
                continue;
            }
            eprintln!(
                "== {engine} ({} entries), run {round} of {}",
                a.entries, a.runs
            );
            // The child's databases go in a directory this process removes, even after a kill.
            let dir = tempfile::Builder::new()
                .prefix("deadbolt-bench-")
                .tempdir_in(base)
                .map_err(|e| format!("creating a temp dir in {}: {e}", base.display()))?;
            let cmd = match go_bin() {
                Some(bin) if engine == GO_ENGINE => {
                    let mut c = Command::new(bin);
                    c.arg("child").arg(a.entries.to_string()).arg(dir.path());
                    c
                }
                _ => {
                    let mut c = Command::new(&exe);
                    c.args([
                        "--child",
                        engine,
                        "--entries",
                        &a.entries.to_string(),
                        "--dir",
                    ])
                    .arg(dir.path());
                    c
                }
            };
            let (stdout, outcome) = run_with_timeout(cmd, a.timeout)
                .map_err(|e| format!("running the {engine} child: {e}"))?;
            let r = samples.entry(engine.clone()).or_default();
            for line in stdout.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if let ["RESULT", k, v] = f[..] {
                    if let Ok(v) = v.parse() {
                        r.entry(k.to_string()).or_default().push(v);
                    }
                }
            }
            match outcome {
                Some(st) if st.success() => {}
                Some(st) => {
                    failures.insert(engine.clone(), format!("child process failed ({st})"));
                }
                None => {
                    eprintln!("  {engine}: killed after {} s", a.timeout);
                    failures.insert(
                        engine.clone(),
                        format!(
                            "stopped after the {} s time limit per engine run (`--timeout`), \
                             so it was not run again",
                            a.timeout
                        ),
                    );
                    timed_out.push(engine.clone());
                }
            }
        }
    }
    for round in 1..=a.runs {
        eprintln!(
            "== interleaved individual commits, run {round} of {}",
            a.runs
        );
        let out = Command::new(&exe)
            .args([
                "--duel",
                "--engines",
                &engines.join(","),
                "--entries",
                &a.entries.to_string(),
                "--dir",
            ])
            .arg(base)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("running the interleaved commit run: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["DUEL", e, v] = f[..] {
                if let Ok(v) = v.parse() {
                    let r = samples.entry(e.to_string()).or_default();
                    r.entry("duel_per_s".into()).or_default().push(v);
                    eprintln!("  {e}: {v:.0} commits/s");
                }
            }
        }
        if !out.status.success() {
            eprintln!("  interleaved commit run failed: {}", out.status);
        }
    }
    for (engine, metrics) in samples {
        let r = results.entry(engine).or_default();
        for (k, mut v) in metrics {
            v.sort_by(f64::total_cmp);
            r.insert(k, v[v.len() / 2]);
        }
    }
    let have_strace = Command::new("strace").arg("-V").output().is_ok();
    if have_strace {
        for engine in engines {
            eprintln!("== strace sync probe: {engine}");
            let with = strace_syncs(&exe, engine, PROBE_COMMITS, base);
            let without = strace_syncs(&exe, engine, 0, base);
            match (with, without) {
                (Ok(w), Ok(wo)) => {
                    let per = w.saturating_sub(wo) as f64 / PROBE_COMMITS as f64;
                    results
                        .entry(engine.clone())
                        .or_default()
                        .insert("strace_syncs".into(), per);
                    eprintln!("  syncs per commit = {per:.2}");
                }
                (Err(e), _) | (_, Err(e)) => eprintln!("  strace probe failed: {e}"),
            }
        }
    }
    Ok((machine, results, failures, have_strace))
}

fn fmt_num(v: f64) -> String {
    let (s, digits) = if v >= 100.0 {
        (format!("{v:.0}"), 0)
    } else if v >= 10.0 {
        (format!("{v:.1}"), 1)
    } else {
        (format!("{v:.2}"), 2)
    };
    if digits > 0 {
        return s;
    }
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// deadbolt's figure relative to `other`, >1 meaning deadbolt is better.
fn ratio(row: &Row, deadbolt: f64, other: f64) -> f64 {
    if row.higher_better {
        deadbolt / other
    } else {
        other / deadbolt
    }
}

fn render(
    a: &Args,
    machine: &[String],
    results: &Results,
    failures: &BTreeMap<String, String>,
    have_strace: bool,
) -> String {
    let n = a.entries;
    let threads = results
        .get("deadbolt")
        .and_then(|r| r.get("threads"))
        .copied()
        .unwrap_or(2.0);
    let batches = (n / 10_000).max(10);
    let row = |label: String, metric, unit, higher_better, scale| Row {
        label,
        metric,
        unit,
        higher_better,
        scale,
    };
    let rows = vec![
        row(
            format!("Bulk load: {} entries, one transaction", fmt_num(n as f64)),
            "bulk_load_ms",
            "ms",
            false,
            1.0,
        ),
        row(
            format!("Individual durable commits: {INDIVIDUAL_COMMITS} × 1 key, each engine in its own process"),
            "individual_per_s",
            "commits/s",
            true,
            1.0,
        ),
        row(
            format!(
                "Individual durable commits, all engines in one process, interleaved: \
                 {DUEL_ROUNDS} rounds × {DUEL_COMMITS} commits each, on {} entries",
                fmt_num(n.min(DUEL_ENTRIES) as f64)
            ),
            "duel_per_s",
            "commits/s",
            true,
            1.0,
        ),
        row(
            format!("Batch writes: {batches} transactions × {BATCH_SIZE} keys"),
            "batch_ms",
            "ms",
            false,
            1.0,
        ),
        row(
            format!("Random point reads, 1 thread ({} reads)", fmt_num(n as f64)),
            "reads_1t_per_s",
            "reads/s",
            true,
            1.0,
        ),
        row(
            format!(
                "Random point reads, {threads} threads ({} reads each)",
                fmt_num(n as f64)
            ),
            "reads_nt_per_s",
            "reads/s",
            true,
            1.0,
        ),
        row(
            format!(
                "Range scans: {} random starts × {SCAN_LEN} entries",
                fmt_num((n / 100).max(100) as f64)
            ),
            "scan_entries_per_s",
            "entries/s",
            true,
            1.0,
        ),
        row(
            format!(
                "Nested-bucket reads: {} entries in 100×10 buckets, {} lookups",
                fmt_num((n / 10) as f64),
                fmt_num(n as f64)
            ),
            "nested_reads_per_s",
            "reads/s",
            true,
            1.0,
        ),
        row(
            format!(
                "Removals: {} keys, one transaction",
                fmt_num((n / 2) as f64)
            ),
            "removals_ms",
            "ms",
            false,
            1.0,
        ),
        row(
            "File size after all of the above".into(),
            "size_bytes",
            "MiB",
            false,
            1.0 / (1 << 20) as f64,
        ),
        row(
            "File size after compaction".into(),
            "compacted_bytes",
            "MiB",
            false,
            1.0 / (1 << 20) as f64,
        ),
        row(
            "Peak memory of the engine's process (VmHWM)".into(),
            "peak_rss_kib",
            "MiB",
            false,
            1.0 / 1024.0,
        ),
        row(
            "Sync calls per durable commit (strace -f -c)".into(),
            "strace_syncs",
            "calls",
            false,
            1.0,
        ),
    ];
    let mut engines: Vec<&String> = a.engines.iter().collect();
    for e in results.keys() {
        if !engines.contains(&e) {
            engines.push(e);
        }
    }
    let peers: Vec<&String> = engines
        .iter()
        .copied()
        .filter(|e| *e != "deadbolt")
        .collect();
    let get = |e: &str, m: &str| results.get(e).and_then(|r| r.get(m)).copied();

    let mut s = String::new();
    s.push_str(&format!(
        "# Benchmarks: deadbolt and its peers, {} entries\n\n",
        fmt_num(n as f64)
    ));
    s.push_str(&format!(
        "Generated by `cargo run --release -p deadbolt-bench -- --entries {n} --runs {} --timeout {}{}` \
         (the exact command; `--entries 1000000` is the published size, the default is {QUICK_ENTRIES}).\n\n",
        a.runs,
        a.timeout,
        a.out.as_ref().map_or(String::new(), |o| format!(
            " --out {}{}",
            o.display(),
            if a.append { " --append" } else { "" }
        ))
    ));
    s.push_str(&format!(
        "**Size of this run: {} entries; each figure is the median of {} run(s) per engine.**\n\n",
        fmt_num(n as f64),
        a.runs
    ));
    s.push_str(
        "Keys are 24 random bytes and values 150 random bytes, as in redb's published comparison. \
         Every engine runs in its own process, one after another, on real files, with its \
         default durability: every write transaction is durable when its commit returns (sled: \
         the write followed by `flush()`). Figures come from one invocation and are only meaningful as \
         ratios between engines measured side by side; the machine was shared with other jobs.\n\n",
    );
    s.push_str("## Machine\n\n");
    for m in machine {
        s.push_str(&format!("- {m}\n"));
    }
    s.push_str("\n## Results\n\n");
    s.push_str("The last column is deadbolt's figure relative to the best peer for that row, \
                oriented so that **> 1.00 means deadbolt is better** (faster, smaller, fewer syncs).\n\n");
    s.push_str("| Workload | unit |");
    for e in &engines {
        s.push_str(&format!(" {e} |"));
    }
    s.push_str(" deadbolt ÷ best peer |\n|---|---|");
    for _ in &engines {
        s.push_str("---:|");
    }
    s.push_str("---:|\n");
    for r in &rows {
        s.push_str(&format!(
            "| {} | {} {} |",
            r.label,
            r.unit,
            if r.higher_better { "↑" } else { "↓" }
        ));
        for e in &engines {
            let cell = match get(e, r.metric) {
                Some(v) => {
                    let mut c = fmt_num(v * r.scale);
                    if r.metric == "nested_reads_per_s" && get(e, "nested_native") == Some(0.0) {
                        c.push_str(" ᵉ");
                    }
                    c
                }
                None if failures
                    .get(e.as_str())
                    .is_some_and(|f| f.contains("time limit")) =>
                {
                    "timeout".into()
                }
                None if failures.contains_key(e.as_str()) && r.metric != "compacted_bytes" => {
                    "failed".into()
                }
                None if r.metric == "compacted_bytes" => "n/a".into(),
                None => "–".into(),
            };
            s.push_str(&format!(" {cell} |"));
        }
        let best = peers
            .iter()
            .filter_map(|p| get(p, r.metric).map(|v| (*p, v)))
            .fold(None::<(&String, f64)>, |acc, (p, v)| match acc {
                Some((_, bv)) if ratio(r, bv, v) >= 1.0 => acc,
                _ => Some((p, v)),
            });
        match (get("deadbolt", r.metric), best) {
            (Some(d), Some((p, v))) if d > 0.0 && v > 0.0 => {
                let x = ratio(r, d, v);
                let mark = if x >= 1.0 { "" } else { " ✗" };
                s.push_str(&format!(" **{x:.2}** (vs {p}){mark} |\n"));
            }
            (Some(d), Some((p, v))) if r.metric == "strace_syncs" => {
                s.push_str(&format!(" {} vs {} ({p}) |\n", fmt_num(d), fmt_num(v)));
            }
            _ => s.push_str(" – |\n"),
        }
    }
    s.push_str(
        "\n↑ higher is better, ↓ lower is better. ᵉ = the engine has no nested buckets; \
                emulated with a 9-byte bucket-path key prefix in one table, so it is a plain point \
                read. n/a = the engine has no compaction. ✗ = deadbolt is behind the best peer.\n",
    );
    if let Some(d) = get("deadbolt", "engine_syncs_per_commit") {
        s.push_str(&format!(
            "\ndeadbolt's own counter (`Stats::syncs`) over the {INDIVIDUAL_COMMITS} individual \
             commits: {d:.2} fdatasync per commit.\n"
        ));
    }
    if !have_strace {
        s.push_str("\nstrace was not installed, so sync calls per commit were not measured.\n");
    }
    if engines.iter().any(|e| *e == "bbolt-rs") {
        s.push_str(
            "\n**bbolt-rs** 1.3.10: deleting keys after a bulk load of these random keys panics \
             (\"Page N already freed\" in its freelist; reproduced by \
             `cargo run --release -p deadbolt-bench --example bbolt_repro`), and \
             `bbolt_rs::util::compact` copied none of the entries, so it has no compacted size.\n",
        );
    }
    for (e, why) in failures {
        s.push_str(&format!(
            "\n**{e}**: {why}; the workloads after the last figure shown did not run.\n"
        ));
    }

    // Targets from issue 6.
    s.push_str("\n## Targets\n\n| Target | measured ratio | met? |\n|---|---:|:---:|\n");
    let mut target = |what: String, metric: &str, peer: &str, need: f64| {
        let row = rows.iter().find(|r| r.metric == metric);
        let cell = match (row, get("deadbolt", metric), get(peer, metric)) {
            (Some(r), Some(d), Some(p)) if d > 0.0 && p > 0.0 => {
                let x = ratio(r, d, p);
                let ok = if x >= need { "yes" } else { "**no**" };
                format!("{x:.2} | {ok}")
            }
            _ => "– | not measured".into(),
        };
        s.push_str(&format!("| {what} | {cell} |\n"));
    };
    for m in ["reads_1t_per_s", "reads_nt_per_s"] {
        let t = if m == "reads_1t_per_s" {
            "1 thread"
        } else {
            "all threads"
        };
        target(
            format!("Random point reads ({t}) ≥ 1.0× LMDB"),
            m,
            "lmdb",
            1.0,
        );
    }
    for (peer, need) in [
        ("lmdb", 1.8),
        ("jammdb", 1.8),
        ("bbolt-rs", 1.8),
        (GO_ENGINE, 1.8),
        ("redb", 1.0),
    ] {
        target(
            format!("Individual durable commits ≥ {need}× {peer} (interleaved run)"),
            "duel_per_s",
            peer,
            need,
        );
        target(
            format!("Individual durable commits ≥ {need}× {peer} (separate processes)"),
            "individual_per_s",
            peer,
            need,
        );
    }
    target(
        "Bulk load no slower than LMDB".into(),
        "bulk_load_ms",
        "lmdb",
        1.0,
    );
    target(
        "Batch writes no slower than LMDB".into(),
        "batch_ms",
        "lmdb",
        1.0,
    );
    target(
        "Removals faster than redb".into(),
        "removals_ms",
        "redb",
        1.0,
    );
    target(
        "File size ≤ LMDB's after the same work".into(),
        "size_bytes",
        "lmdb",
        1.0,
    );
    target(
        "Compacted size ≤ LMDB's".into(),
        "compacted_bytes",
        "lmdb",
        1.0,
    );
    if !results.contains_key(GO_ENGINE) {
        s.push_str(
            "\nGo bbolt is not in this table (no Go toolchain on the machine); jammdb and \
             bbolt-rs, Rust ports of BoltDB, stand in for it in the individual-commit target.\n",
        );
    } else {
        s.push_str(&format!(
            "\n{GO_ENGINE} is Go bbolt (Debian's golang-github-coreos-bbolt-dev) driven by \
             `bench/go/bboltbench.go` with the same keys, values and workloads; it joins the run \
             when `go` is installed.\n"
        ));
    }
    // The analysis of where deadbolt's time goes is written by hand next to this command.
    if a.append {
        return s;
    }
    if let Ok(notes) = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/NOTES.md")) {
        s.push('\n');
        s.push_str(&notes);
    }
    s
}
