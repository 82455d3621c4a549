//! Instructions and cache misses per operation, counted by valgrind's callgrind (issue 14):
//! figures that do not drift with the load of the machine, unlike the timed report.
//!
//! `--costs` runs this program again under callgrind as `--cost-child ENGINE PHASE N OPS`, once
//! per engine and phase. The child sets up untimed (loads `N` entries, generates the keys) and
//! then calls exactly one `#[inline(never)]` `phase_*` function; callgrind collects only inside
//! it (`--toggle-collect`), so the totals of its out file divided by `OPS` are the costs of one
//! operation. Method and earlier figures: `/work/shared/design/performance.md`, section 1.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use deadbolt_bench::{dir_size, key, open, random_keys, temp_dir_in, value, Engine, Res, KEY_LEN};

use crate::args::{cost_child_args, Args, CostChild};
use crate::machine::sh;
use crate::protocol::{self, RESULT};
use crate::render::fmt_num;
use crate::report::write_out;

/// The default `--entries` of `--costs`: the file is then ~9x the simulated last-level cache.
pub const COST_ENTRIES: u64 = 200_000;
/// The engines `--costs` counts unless `--engines` says otherwise.
pub const COST_ENGINES: [&str; 3] = ["deadbolt", "lmdb", "redb"];

/// Random point reads in the get phase.
const GETS: u64 = 50_000;
/// Puts in the bulk-load phase (at most `N`).
const LOAD_PUTS: u64 = 100_000;
/// Keys removed in the remove phase (at most half of `N`).
const REMOVES: u64 = 50_000;
/// Single-key durable commits in the commit phase.
const COMMITS: u64 = 200;
/// Entries whose key and value generation is counted for the note under the table.
const GENERATED: u64 = 100_000;
/// The seed of the get phase's keys: the timed report's one-thread reads start with them.
const GET_SEED: u64 = 1;

/// The simulated caches: 32 KiB 8-way L1s, a 6 MiB 12-way last level, 64-byte lines.
const CACHES: [&str; 4] = [
    "--cache-sim=yes",
    "--I1=32768,8,64",
    "--D1=32768,8,64",
    "--LL=6291456,12,64",
];
/// The simulated last-level cache, in bytes (as in [`CACHES`]).
const LL_BYTES: u64 = 6 << 20;

/// What one `--cost-child` run does inside its `phase_*` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Random point reads over the loaded entries, every page already read once.
    Get,
    /// Puts into a fresh database in one transaction, its commit included.
    Load,
    /// Removals of loaded keys in one transaction, its commit included.
    Remove,
    /// Durable commits of one new key each.
    Commit,
    /// Generating keys ([`key`]) alone, no engine: what the adapters add to a put or a remove.
    Keys,
    /// Generating values ([`value`]) alone, no engine: what the adapters add to a put.
    Values,
}

impl Phase {
    /// The phases that are the table's rows, in order.
    const ROWS: [Phase; 4] = [Phase::Get, Phase::Load, Phase::Remove, Phase::Commit];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Get => "get",
            Phase::Load => "load",
            Phase::Remove => "remove",
            Phase::Commit => "commit",
            Phase::Keys => "keys",
            Phase::Values => "values",
        }
    }

    pub fn parse(s: &str) -> Res<Phase> {
        [
            Phase::Get,
            Phase::Load,
            Phase::Remove,
            Phase::Commit,
            Phase::Keys,
            Phase::Values,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| format!("unknown cost phase {s:?}").into())
    }

    /// The function callgrind collects in (the child's `phase_*`).
    fn function(self) -> String {
        format!("phase_{}", self.name())
    }

    /// Operations in the phase after a load of `n` entries.
    fn ops(self, n: u64) -> u64 {
        match self {
            Phase::Get => GETS,
            Phase::Load => LOAD_PUTS.min(n),
            Phase::Remove => REMOVES.min(n / 2),
            Phase::Commit => COMMITS,
            Phase::Keys | Phase::Values => GENERATED,
        }
    }

    /// The table's row label.
    fn label(self) -> &'static str {
        match self {
            Phase::Get => "per get",
            Phase::Load => "per put of a bulk load",
            Phase::Remove => "per remove",
            Phase::Commit => "per single-key commit",
            Phase::Keys => "per key generated",
            Phase::Values => "per value generated",
        }
    }

    /// What the phase does, for the list under the table.
    fn describe(self, n: u64) -> String {
        let ops = fmt_num(self.ops(n) as f64);
        let n = fmt_num(n as f64);
        match self {
            Phase::Get => format!(
                "{ops} random gets over the {n} entries in one read transaction, after an \
                 uncounted pass over the same keys (so every page they touch was already read \
                 once: the steady state)"
            ),
            Phase::Load => {
                format!("{ops} puts into a fresh database in one transaction, its commit included")
            }
            Phase::Remove => {
                format!("{ops} of the {n} entries removed in one transaction, its commit included")
            }
            Phase::Commit => {
                format!("{ops} durable commits of one new key each, into the {n} entries")
            }
            Phase::Keys | Phase::Values => format!("{ops} generated"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The child: set up, then one phase function. Nothing else may be named `phase_*`, and the
// phase functions take no closures (a closure's name contains its function's and would toggle
// collection off inside it).

/// Run `c.phase` on `c.engine` as callgrind's subject and print `RESULT` lines: `ops` (the
/// operations in the phase) and `file_bytes` (the database's files after the setup).
pub fn cost_child(c: &CostChild, base: &Path) -> Res<()> {
    let (n, ops) = (c.n, c.ops);
    if matches!(c.phase, Phase::Keys | Phase::Values) {
        match c.phase {
            Phase::Keys => phase_keys(ops),
            _ => phase_values(ops),
        }
        protocol::print(RESULT, "ops", ops as f64);
        return Ok(());
    }
    let tmp = temp_dir_in(base, "deadbolt-costs-")?;
    let dir = tmp.path().join("db");
    let db = open_engine(&c.engine, &dir)?;
    let name = &c.engine;
    if c.phase != Phase::Load {
        if c.phase == Phase::Remove && ops >= n {
            return Err(format!("remove phase: {ops} removals of {n} entries").into());
        }
        db.write(0..n)?;
        protocol::print(RESULT, "file_bytes", dir_size(&dir)? as f64);
    }
    match c.phase {
        Phase::Get => {
            let keys = random_keys(GET_SEED, ops, n);
            expect(name, "the warm-up pass found", db.get(&keys)?, ops)?;
            let found = phase_get(&*db, &keys)?;
            expect(name, "the gets found", found, ops)?;
        }
        Phase::Load => {
            phase_load(&*db, ops)?;
            let sample: Vec<_> = (0..ops).step_by(97).map(key).collect();
            let want = sample.len() as u64;
            expect(name, "after the load, gets found", db.get(&sample)?, want)?;
        }
        Phase::Remove => {
            phase_remove(&*db, ops)?;
            let gone: Vec<_> = (0..ops).step_by(97).map(key).collect();
            expect(name, "after the removals, gets found", db.get(&gone)?, 0)?;
            let kept: Vec<_> = (ops..n).step_by(97).map(key).collect();
            let want = kept.len() as u64;
            expect(name, "after the removals, gets found", db.get(&kept)?, want)?;
        }
        Phase::Commit => {
            phase_commit(&*db, n, ops)?;
            let committed: Vec<_> = (n..n + ops).map(key).collect();
            expect(
                name,
                "after the commits, gets found",
                db.get(&committed)?,
                ops,
            )?;
        }
        Phase::Keys | Phase::Values => unreachable!("handled above"),
    }
    protocol::print(RESULT, "ops", ops as f64);
    Ok(())
}

/// The LMDB map under valgrind: enough for 1M entries' ~280 MB file.
#[cfg(feature = "peers")]
const LMDB_MAP: usize = 4 << 30;

/// [`open`], except that LMDB maps [`LMDB_MAP`] bytes (its usual 64 GiB fails under valgrind:
/// the map is only reserved address space, so this changes none of its work).
fn open_engine(name: &str, dir: &Path) -> Res<Box<dyn Engine>> {
    #[cfg(feature = "peers")]
    if name == "lmdb" {
        return Ok(Box::new(deadbolt_bench::engines::Lmdb::open_with_map_size(
            dir, LMDB_MAP,
        )?));
    }
    open(name, dir)
}

/// An error unless `got == want`: a phase that did less than its operations counts wrong.
fn expect(engine: &str, what: &str, got: u64, want: u64) -> Res<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{engine}: {what} {got} keys, expected {want}").into())
    }
}

// Each phase takes its engine through `black_box`, so that the compiler cannot hoist the virtual
// call's target into the caller (phase_load and phase_remove would then be one function, merged
// by LLVM, and `*phase_remove*` would match nothing), and uses its result after the call
// (`black_box(&r)`), so that the call is not a tail jump out of the function.

/// The gets of `keys`, in one read transaction.
#[inline(never)]
fn phase_get(db: &dyn Engine, keys: &[[u8; KEY_LEN]]) -> Res<u64> {
    let db = black_box(db);
    let r = db.get(black_box(keys));
    black_box(&r);
    r
}

/// Entries `0..ops` put into the (fresh) database in one transaction, committed.
#[inline(never)]
fn phase_load(db: &dyn Engine, ops: u64) -> Res<()> {
    let db = black_box(db);
    let r = db.write(0..black_box(ops));
    black_box(&r);
    r
}

/// The keys of entries `0..ops` removed in one transaction, committed.
#[inline(never)]
fn phase_remove(db: &dyn Engine, ops: u64) -> Res<()> {
    let db = black_box(db);
    let r = db.remove(0..black_box(ops));
    black_box(&r);
    r
}

/// Entries `n..n + ops` committed one durable transaction each.
#[inline(never)]
fn phase_commit(db: &dyn Engine, n: u64, ops: u64) -> Res<()> {
    let db = black_box(db);
    for i in n..n + black_box(ops) {
        db.write(i..i + 1)?;
    }
    Ok(())
}

/// `ops` keys generated as the adapters generate them.
#[inline(never)]
fn phase_keys(ops: u64) {
    for i in 0..black_box(ops) {
        black_box(key(i));
    }
}

/// `ops` values generated as the adapters generate them.
#[inline(never)]
fn phase_values(ops: u64) {
    for i in 0..black_box(ops) {
        black_box(value(i));
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: one callgrind run per engine and phase, then the table.

/// The totals of a callgrind out file that the table uses.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Instructions executed (`Ir`).
    pub ir: u64,
    /// L1 data misses, reads and writes (`D1mr + D1mw`).
    pub d1: u64,
    /// Last-level data misses, reads and writes (`DLmr + DLmw`).
    pub ll: u64,
}

/// The totals of a callgrind out file: its `events:` header names the columns of its `totals:`
/// line (or, in files without one, its `summary:` line). A missing trailing value is 0, as in
/// callgrind's format.
pub fn parse_callgrind(text: &str) -> Res<Counts> {
    let (mut events, mut totals, mut summary) = (None, None, None);
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("events:") {
            events = Some(r.split_whitespace().collect::<Vec<_>>());
        } else if let Some(r) = line.strip_prefix("totals:") {
            totals = Some(r);
        } else if let Some(r) = line.strip_prefix("summary:") {
            summary = Some(r);
        }
    }
    let events = events.ok_or("no `events:` line in the callgrind out file")?;
    let values: Vec<u64> = totals
        .or(summary)
        .ok_or("no `totals:` or `summary:` line in the callgrind out file")?
        .split_whitespace()
        .map(|v| v.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("callgrind totals: {e}"))?;
    let event = |name: &str| -> Res<u64> {
        let i = events.iter().position(|e| *e == name).ok_or_else(|| {
            format!("no {name} events in the callgrind out file (was --cache-sim=yes given?)")
        })?;
        Ok(values.get(i).copied().unwrap_or(0))
    };
    Ok(Counts {
        ir: event("Ir")?,
        d1: event("D1mr")? + event("D1mw")?,
        ll: event("DLmr")? + event("DLmw")?,
    })
}

/// One operation's costs: [`Counts`] divided by the operations.
#[derive(Clone, Copy, Debug)]
struct PerOp {
    ir: f64,
    d1: f64,
    ll: f64,
}

/// Everything the table shows.
struct Measured {
    /// Per engine, per phase: the costs or why there are none.
    cells: BTreeMap<(String, Phase), Result<PerOp, String>>,
    /// Per engine, the database's files after the load of the get phase.
    file_bytes: BTreeMap<String, u64>,
    /// Per generation phase ([`Phase::Keys`], [`Phase::Values`]), instructions per item.
    generated: BTreeMap<Phase, f64>,
}

/// The `--costs` job: count every engine's phases under callgrind, print the table and write it
/// to `--out` (or append it as a section).
pub fn costs(a: &Args, base: &Path) -> Res<()> {
    let engines: Vec<&str> = a.engines.iter().map(String::as_str).collect();
    if let Some(e) = engines.iter().find(|e| open_only(e)) {
        return Err(format!("--costs counts the Rust adapters only, not {e:?}").into());
    }
    if engines.is_empty() {
        return Err("--costs: no engines to count".into());
    }
    match Command::new("valgrind").arg("--version").output() {
        Ok(o) if o.status.success() => {
            eprintln!("== {}", String::from_utf8_lossy(&o.stdout).trim())
        }
        _ => {
            return Err(
                "--costs counts with valgrind's callgrind, and `valgrind` is not \
                        installed or does not run (Debian/Ubuntu: apt-get install valgrind)"
                    .into(),
            )
        }
    }
    let exe = std::env::current_exe()?;
    let work = temp_dir_in(base, "deadbolt-costs-")?;
    let n = a.entries;
    let mut m = Measured {
        cells: BTreeMap::new(),
        file_bytes: BTreeMap::new(),
        generated: BTreeMap::new(),
    };
    let mut failed = 0;
    for &engine in &engines {
        for phase in Phase::ROWS {
            let ops = phase.ops(n);
            let cell = match callgrind(&exe, engine, phase, n, ops, work.path()) {
                Ok((c, results)) => {
                    if let Some(&b) = results.get("file_bytes").filter(|_| phase == Phase::Get) {
                        m.file_bytes.insert(engine.to_string(), b as u64);
                    }
                    Ok(per_op(c, ops))
                }
                Err(e) => {
                    eprintln!("  {e}");
                    failed += 1;
                    Err(e.to_string())
                }
            };
            m.cells.insert((engine.to_string(), phase), cell);
        }
    }
    for phase in [Phase::Keys, Phase::Values] {
        let ops = phase.ops(n);
        match callgrind(&exe, "none", phase, n, ops, work.path()) {
            Ok((c, _)) => {
                m.generated.insert(phase, c.ir as f64 / ops as f64);
            }
            Err(e) => eprintln!("  {e}"),
        }
    }
    let report = render(a, &engines, &m);
    println!("{report}");
    if let Some(out) = &a.out {
        write_out(out, a.append, &report)?;
    }
    if failed > 0 {
        return Err(format!("{failed} callgrind run(s) failed (see above)").into());
    }
    Ok(())
}

/// Engines that have no adapter in this program (Go bbolt).
fn open_only(engine: &str) -> bool {
    !deadbolt_bench::engine_names().contains(&engine)
}

/// `c` divided by `ops`.
fn per_op(c: Counts, ops: u64) -> PerOp {
    let ops = ops as f64;
    PerOp {
        ir: c.ir as f64 / ops,
        d1: c.d1 as f64 / ops,
        ll: c.ll as f64 / ops,
    }
}

/// One callgrind run of `phase` on `engine`: its totals and the child's `RESULT` figures.
fn callgrind(
    exe: &Path,
    engine: &str,
    phase: Phase,
    n: u64,
    ops: u64,
    work: &Path,
) -> Res<(Counts, BTreeMap<String, f64>)> {
    eprintln!(
        "== callgrind: {engine} {} ({} operations)",
        phase.name(),
        fmt_num(ops as f64)
    );
    let db_dir = temp_dir_in(work, "db-")?;
    let out_file = work.join(format!("callgrind.{engine}.{}.out", phase.name()));
    let t = Instant::now();
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .args(CACHES)
        .arg(format!("--toggle-collect=*{}*", phase.function()))
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(exe)
        .args(cost_child_args(engine, phase, n, ops, db_dir.path()))
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    let fail = |what: String| -> Box<dyn std::error::Error + Send + Sync> {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "{engine} {}: {what}; the run's last lines:\n{}",
            phase.name(),
            tail.join("\n")
        )
        .into()
    };
    if !out.status.success() {
        return Err(fail(format!("callgrind run failed ({})", out.status)));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: BTreeMap<String, f64> = protocol::parse(&stdout, RESULT)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if results.get("ops") != Some(&(ops as f64)) {
        return Err(fail(format!("the child did not report {ops} operations")));
    }
    let text = std::fs::read_to_string(&out_file)
        .map_err(|e| format!("reading {}: {e}", out_file.display()))?;
    let c = parse_callgrind(&text).map_err(|e| fail(e.to_string()))?;
    if c.ir == 0 {
        return Err(fail(format!(
            "no instructions counted inside {} (inlined or renamed?)",
            phase.function()
        )));
    }
    let p = per_op(c, ops);
    eprintln!(
        "  {:.0} s: {} Ir, {} D1 misses, {} LL misses per operation",
        t.elapsed().as_secs_f64(),
        fmt_num(p.ir),
        fmt_num(p.d1),
        fmt_num(p.ll)
    );
    Ok((c, results))
}

/// The engine's name in the table.
fn display(engine: &str) -> &str {
    match engine {
        "lmdb" => "LMDB (heed)",
        other => other,
    }
}

/// The section: title, how it was counted, the table and what each row does.
fn render(a: &Args, engines: &[&str], m: &Measured) -> String {
    let n = a.entries;
    let mut s = String::from("# Instructions and cache misses per operation (callgrind)\n\n");
    let mut cmd = format!("cargo run --release -p deadbolt-bench -- --costs --entries {n}");
    if a.engines_given {
        cmd.push_str(&format!(" --engines {}", engines.join(",")));
    }
    if let Some(o) = &a.out {
        cmd.push_str(&format!(" --out {}", o.display()));
        if a.append {
            cmd.push_str(" --append");
        }
    }
    let src = env!("CARGO_MANIFEST_DIR");
    let commit = sh("git", &["-C", src, "rev-parse", "--short", "HEAD"]);
    let dirty = sh(
        "git",
        &["-C", src, "status", "--porcelain", "--untracked-files=no"],
    );
    let dirty = if dirty.is_empty() || dirty == "unknown" {
        ""
    } else {
        " with uncommitted changes"
    };
    s.push_str(&format!(
        "Generated by `{cmd}` at commit {commit}{dirty}, with {}.\n\n",
        sh("rustc", &["-V"])
    ));
    let sizes: Vec<String> = engines
        .iter()
        .filter_map(|e| {
            m.file_bytes.get(*e).map(|&b| {
                format!(
                    "{} {:.0} MiB = {:.1}x",
                    display(e),
                    b as f64 / (1 << 20) as f64,
                    b as f64 / LL_BYTES as f64
                )
            })
        })
        .collect();
    s.push_str(&format!(
        "Counted by valgrind's callgrind with its cache simulator (`valgrind --tool=callgrind {}`), \
         collecting only inside the one function that runs the measured operations \
         (`--toggle-collect='*phase_get*'` and so on), and divided by their number. These are \
         counts, not times: they do not drift with the load of the machine (they do change with \
         the compiler and the crates' versions). **Ir** is instructions executed, **D1 misses** \
         are data reads and writes missing the 32 KiB 8-way L1 (D1mr + D1mw), **LL misses** data \
         reads and writes missing the last-level cache (DLmr + DLmw). **The last-level cache is \
         set to 6 MiB so that the 200,000-entry file is about 9x its size, as the published \
         1,000,000-entry run's files are to the host's 32 MiB L3: the LL column is the proxy for \
         DRAM misses at 1M entries** (this run's files after the load of {} entries: {}). The \
         last column is deadbolt's instructions over LMDB's (> 1: deadbolt executes more).\n\n",
        CACHES.join(" "),
        fmt_num(n as f64),
        if sizes.is_empty() {
            "not measured".to_string()
        } else {
            sizes.join(", ")
        },
    ));
    let ratio = engines.contains(&"deadbolt") && engines.contains(&"lmdb");
    s.push_str("| per operation |");
    for e in engines {
        let e = display(e);
        s.push_str(&format!(" {e} Ir | {e} D1 misses | {e} LL misses |"));
    }
    if ratio {
        s.push_str(" deadbolt ÷ LMDB, Ir |");
    }
    s.push_str("\n|---|");
    for _ in engines {
        s.push_str("---:|---:|---:|");
    }
    if ratio {
        s.push_str("---:|");
    }
    s.push('\n');
    for phase in Phase::ROWS {
        s.push_str(&format!("| {} |", phase.label()));
        for e in engines {
            match m.cells.get(&(e.to_string(), phase)) {
                Some(Ok(p)) => s.push_str(&format!(
                    " {} | {} | {} |",
                    fmt_num(p.ir),
                    fmt_num(p.d1),
                    fmt_num(p.ll)
                )),
                _ => s.push_str(" failed | | |"),
            }
        }
        if ratio {
            let ir = |e: &str| match m.cells.get(&(e.to_string(), phase)) {
                Some(Ok(p)) => Some(p.ir),
                _ => None,
            };
            match (ir("deadbolt"), ir("lmdb")) {
                (Some(d), Some(l)) => s.push_str(&format!(" {:.2} |", d / l)),
                _ => s.push_str(" |"),
            }
        }
        s.push('\n');
    }
    s.push_str("\nThe rows, each one callgrind run of its own on a fresh database:\n\n");
    for phase in Phase::ROWS {
        s.push_str(&format!("- {}: {}.\n", phase.label(), phase.describe(n)));
    }
    s.push_str(
        "\nKeys are 24 random bytes and values 150, from the timed report's `key(i)` and \
         `value(i)`; the gets' keys are generated before the counted function, but the put and \
         remove rows include the adapters' generation of each key and value",
    );
    match (
        m.generated.get(&Phase::Keys),
        m.generated.get(&Phase::Values),
    ) {
        (Some(&k), Some(&v)) => {
            s.push_str(&format!(
                ", as the timed report's calls do (counted alone: {} Ir per key, {} per value, \
                 so about {} of a put and {} of a remove",
                fmt_num(k),
                fmt_num(v),
                fmt_num(k + v),
                fmt_num(k)
            ));
            let ir = |e: &str, p: Phase| match m.cells.get(&(e.to_string(), p)) {
                Some(Ok(c)) => Some(c.ir),
                _ => None,
            };
            let mut net = Vec::new();
            for (p, gen, what) in [(Phase::Load, k + v, "puts"), (Phase::Remove, k, "removes")] {
                if let (Some(d), Some(l)) = (ir("deadbolt", p), ir("lmdb", p)) {
                    net.push(format!("{:.2} for {what}", (d - gen) / (l - gen)));
                }
            }
            if !net.is_empty() {
                s.push_str(&format!(
                    "; without it deadbolt ÷ LMDB would be {}",
                    net.join(" and ")
                ));
            }
            s.push(')');
        }
        _ => s.push_str(" (not counted alone: that run failed)"),
    }
    s.push_str(
        ". Only user-space work is counted: the kernel's side of a sync or a page fault is not, \
         so the commit row says nothing about sync latency. valgrind counts each iteration of \
         `rep movsb`/`rep stosb` (glibc's memcpy and memset on this CPU) as an instruction, \
         which inflates the copy-heavy write rows of every engine alike.\n",
    );
    let failures: Vec<String> = m
        .cells
        .iter()
        .filter_map(|((e, p), c)| c.as_ref().err().map(|err| (e, p, err)))
        .map(|(e, p, err)| {
            let first = err.lines().next().unwrap_or_default();
            format!("- {} {}: {first}\n", display(e), p.name())
        })
        .collect();
    if !failures.is_empty() {
        s.push_str("\nFailed runs:\n\n");
        s.push_str(&failures.concat());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head and tail of a real out file of `--cache-sim=yes` (the cost lines shortened).
    const OUT: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  deadbolt-bench --cost-child deadbolt get 200000 50000 --dir /tmp/x
part: 1


desc: I1 cache: 32768 B, 64 B, 8-way associative
desc: D1 cache: 32768 B, 64 B, 8-way associative
desc: LL cache: 6291456 B, 64 B, 12-way associative

desc: Timerange: Basic block 0 - 912345678
desc: Trigger: Program termination

positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 122150000 40000000 9000000 120 1000000 85000 110 300000 24000

ob=(1) /work/target-costs/release/deadbolt-bench
fl=(1) ???
fn=(1) deadbolt_bench::costs::phase_get
0 12 3 1

totals: 122150001 40000001 9000001 121 1000001 85001 111 300001 24001
";

    #[test]
    fn parse_callgrind_sums_the_totals_named_by_the_events_header() {
        let c = parse_callgrind(OUT).unwrap();
        assert_eq!(
            c,
            Counts {
                ir: 122_150_001,
                d1: 1_000_001 + 85_001,
                ll: 300_001 + 24_001,
            }
        );
    }

    #[test]
    fn parse_callgrind_falls_back_to_summary_and_reads_missing_trailing_values_as_zero() {
        let text = "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nsummary: 500 7 3 1 40 2 1\n";
        assert_eq!(
            parse_callgrind(text).unwrap(),
            Counts {
                ir: 500,
                d1: 42,
                ll: 0,
            }
        );
    }

    #[test]
    fn parse_callgrind_rejects_files_without_cache_events_or_totals() {
        let no_cache = "events: Ir\ntotals: 500\n";
        let err = parse_callgrind(no_cache).unwrap_err().to_string();
        assert!(err.contains("--cache-sim=yes"), "{err}");
        assert!(parse_callgrind("events: Ir D1mr D1mw DLmr DLmw\n").is_err());
        assert!(parse_callgrind("totals: 1 2 3 4 5\n").is_err());
    }
}
