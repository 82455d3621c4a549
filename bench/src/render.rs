//! The Markdown report: the Machine section, the results table with deadbolt's ratio to the best
//! peer, the notes under it and the issue-6 targets.

use crate::args::{Args, QUICK_ENTRIES};
use crate::go::GO_ENGINE;
use crate::raw::Measured;
use crate::sizes::{
    BATCH_SIZE, DUEL_COMMITS, DUEL_ENTRIES, DUEL_ROUNDS, INDIVIDUAL_COMMITS, SCAN_LEN,
};

struct Row {
    label: String,
    metric: &'static str,
    unit: &'static str,
    higher_better: bool,
    scale: f64,
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

pub fn render(a: &Args, m: &Measured) -> String {
    let (machine, results, failures, have_strace) =
        (&m.machine, &m.results, &m.failures, m.have_strace);
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
