//! The Markdown report: the header, the Machine section, the results table with deadbolt's
//! ratio to the best peer, the notes under it, the issue-6 targets and `bench/NOTES.md`.

use crate::args::{Args, QUICK_ENTRIES};
use crate::go::GO_ENGINE;
use crate::raw::{bucket_run, bucket_run_engine, Measured, Results};
use crate::sizes::{
    self, BATCH_SIZE, DUEL_COMMITS, DUEL_ROUNDS, INDIVIDUAL_COMMITS, NAMESPACES, OBJECTS,
    OBJECTS_PER_COMMIT, OBJECTS_PER_NAMESPACE, ONE_KEY_BUCKETS, ONE_KEY_COMMITS, SCAN_LEN,
};

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}
use Better::{Higher, Lower};

/// One row of the results table.
struct Row {
    label: String,
    metric: &'static str,
    unit: &'static str,
    better: Better,
    /// Multiplies the measured figure into `unit`.
    scale: f64,
}

const MIB: f64 = 1.0 / (1 << 20) as f64;

/// The table's rows in order: metric, unit, which way is better, scale. The rows from
/// `objects_write_ms` on are the bucket workloads ([`is_bucket_row`]).
const ROWS: [(&str, &str, Better, f64); 21] = [
    ("bulk_load_ms", "ms", Lower, 1.0),
    ("individual_per_s", "commits/s", Higher, 1.0),
    ("duel_per_s", "commits/s", Higher, 1.0),
    ("batch_ms", "ms", Lower, 1.0),
    ("reads_1t_per_s", "reads/s", Higher, 1.0),
    ("reads_nt_per_s", "reads/s", Higher, 1.0),
    ("scan_entries_per_s", "entries/s", Higher, 1.0),
    ("nested_reads_per_s", "reads/s", Higher, 1.0),
    ("removals_ms", "ms", Lower, 1.0),
    ("size_bytes", "MiB", Lower, MIB),
    ("compacted_bytes", "MiB", Lower, MIB),
    ("peak_rss_kib", "MiB", Lower, 1.0 / 1024.0),
    ("strace_syncs", "calls", Lower, 1.0),
    ("objects_write_ms", "ms", Lower, 1.0),
    ("objects_size_bytes", "MiB", Lower, MIB),
    ("objects_walk_ms", "ms", Lower, 1.0),
    ("objects_walk_pages", "pages", Lower, 1.0),
    ("objects_walk_warm_ms", "ms", Lower, 1.0),
    ("objects_delete_ms", "ms", Lower, 1.0),
    ("objects_compacted_bytes", "MiB", Lower, MIB),
    ("one_key_size_bytes", "MiB", Lower, MIB),
];

/// Whether `metric` comes from the bucket workloads' child process.
fn is_bucket_row(metric: &str) -> bool {
    metric.starts_with("objects_") || metric.starts_with("one_key_")
}

/// Whether `metric`'s row is a size after compaction (`n/a` for engines without one).
fn is_compaction_row(metric: &str) -> bool {
    metric.ends_with("compacted_bytes")
}

/// The label of `metric`'s row for a run of `n` entries with `threads` reader threads.
fn label(metric: &str, n: u64, threads: f64) -> String {
    let num = |v: u64| fmt_num(v as f64);
    match metric {
        "bulk_load_ms" => format!("Bulk load: {} entries, one transaction", num(n)),
        "individual_per_s" => format!(
            "Individual durable commits: {INDIVIDUAL_COMMITS} × 1 key, each engine in its own process"
        ),
        "duel_per_s" => format!(
            "Individual durable commits, all engines in one process, interleaved: \
             {DUEL_ROUNDS} rounds × {DUEL_COMMITS} commits each, on {} entries",
            num(sizes::duel_entries(n))
        ),
        "batch_ms" => format!(
            "Batch writes: {} transactions × {BATCH_SIZE} keys",
            sizes::batches(n)
        ),
        "reads_1t_per_s" => format!("Random point reads, 1 thread ({} reads)", num(n)),
        "reads_nt_per_s" => format!(
            "Random point reads, {threads} threads ({} reads each)",
            num(n)
        ),
        "scan_entries_per_s" => format!(
            "Range scans: {} random starts × {SCAN_LEN} entries",
            num(sizes::scan_starts(n))
        ),
        "nested_reads_per_s" => format!(
            "Nested-bucket reads: {} entries in 100×10 buckets, {} lookups",
            num(sizes::nested_entries(n)),
            num(n)
        ),
        "removals_ms" => format!(
            "Removals: {} keys, one transaction",
            num(sizes::removals(n))
        ),
        "size_bytes" => "File size after all of the above".into(),
        "compacted_bytes" => "File size after compaction".into(),
        "peak_rss_kib" => "Peak memory of the engine's process (VmHWM)".into(),
        "strace_syncs" => "Sync calls per durable commit (strace -f -c)".into(),
        "objects_write_ms" => format!(
            "Containerd-like metadata (a fixed size at every --entries): {NAMESPACES} namespace \
             buckets × {} object buckets, each with 3–6 keys of 8–40 bytes and a `labels` bucket \
             of 1–3 keys; written in {} commits of {OBJECTS_PER_COMMIT} objects",
            num(OBJECTS_PER_NAMESPACE),
            OBJECTS / OBJECTS_PER_COMMIT
        ),
        "objects_size_bytes" => "Metadata: file size after the writes (closed)".into(),
        "objects_walk_ms" => format!(
            "Metadata: reopen, then read every bucket and key ({} keys), one transaction",
            num(deadbolt_bench::buckets::objects_walk(0..OBJECTS).keys)
        ),
        "objects_walk_pages" => "Metadata: pages that walk read (deadbolt: `Stats::pages_verified`; \
             others: the pages of their trees)"
            .into(),
        "objects_walk_warm_ms" => "Metadata: the same walk again, in a new transaction \
             (warm: every page mapped, and verified by deadbolt; LMDB's first walk is warm too, \
             heed cannot reopen it in the same process)"
            .into(),
        "objects_delete_ms" => format!(
            "Metadata: delete every second object ({} `delete_bucket`s), commits of {OBJECTS_PER_COMMIT}",
            num(sizes::objects_deleted().count() as u64)
        ),
        "objects_compacted_bytes" => {
            "Metadata: file size after those deletions and compaction".into()
        }
        "one_key_size_bytes" => format!(
            "{} one-key buckets (a fixed size): {ONE_KEY_COMMITS} commits × {} `create_bucket` \
             + one 4-byte put; file size after a reopen (closed)",
            num(ONE_KEY_BUCKETS),
            num(ONE_KEY_BUCKETS / ONE_KEY_COMMITS)
        ),
        other => unreachable!("no label for {other}"),
    }
}

/// The rows of the table for a run of `n` entries.
fn rows(n: u64, results: &Results) -> Vec<Row> {
    // The reader threads of deadbolt's run name the multi-threaded row.
    let threads = get(results, "deadbolt", "threads").unwrap_or(2.0);
    ROWS.iter()
        .map(|&(metric, unit, better, scale)| Row {
            label: label(metric, n, threads),
            metric,
            unit,
            better,
            scale,
        })
        .collect()
}

/// Engine `e`'s figure for `metric`, if it has one.
fn get(results: &Results, e: &str, metric: &str) -> Option<f64> {
    results.get(e).and_then(|r| r.get(metric)).copied()
}

/// Thousands separators for figures of 100 and more (no decimals); 1 decimal from 10, else 2.
pub fn fmt_num(v: f64) -> String {
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
    match row.better {
        Higher => deadbolt / other,
        Lower => other / deadbolt,
    }
}

/// The whole report of a run as `a` describes it.
pub fn render(a: &Args, m: &Measured) -> String {
    let rows = rows(a.entries, &m.results);
    // The engines asked for in their order, then any others the results have.
    let mut engines: Vec<&String> = a.engines.iter().collect();
    for e in m.results.keys() {
        if !engines.contains(&e) {
            engines.push(e);
        }
    }
    let mut s = header(a);
    s.push_str("## Machine\n\n");
    for line in &m.machine {
        s.push_str(&format!("- {line}\n"));
    }
    results_table(&mut s, &rows, &engines, m);
    notes_under_table(&mut s, &engines, m);
    targets(&mut s, &rows, &m.results);
    go_note(&mut s, &m.results);
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

/// The title, the command that reproduces the run, its size and what the figures mean.
fn header(a: &Args) -> String {
    let n = a.entries;
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
    s
}

/// The Results section's table: a row per workload, a column per engine, and deadbolt's ratio
/// to the best peer.
fn results_table(s: &mut String, rows: &[Row], engines: &[&String], m: &Measured) {
    s.push_str("\n## Results\n\n");
    s.push_str("The last column is deadbolt's figure relative to the best peer for that row, \
                oriented so that **> 1.00 means deadbolt is better** (faster, smaller, fewer syncs).\n\n");
    s.push_str("| Workload | unit |");
    for e in engines {
        s.push_str(&format!(" {e} |"));
    }
    s.push_str(" deadbolt ÷ best peer |\n|---|---|");
    for _ in engines {
        s.push_str("---:|");
    }
    s.push_str("---:|\n");
    let peers: Vec<&String> = engines
        .iter()
        .copied()
        .filter(|e| *e != "deadbolt")
        .collect();
    for r in rows {
        s.push_str(&format!(
            "| {} | {} {} |",
            r.label,
            r.unit,
            if r.better == Higher { "↑" } else { "↓" }
        ));
        for e in engines {
            s.push_str(&format!(" {} |", cell(r, e, m)));
        }
        s.push_str(&vs_best_peer(r, &peers, &m.results));
    }
}

/// Engine `e`'s cell in row `r`: its figure, or why there is none.
fn cell(r: &Row, e: &str, m: &Measured) -> String {
    // The child process whose figure this is.
    let run = if is_bucket_row(r.metric) {
        bucket_run(e)
    } else {
        e.to_string()
    };
    let compaction = is_compaction_row(r.metric);
    match get(&m.results, e, r.metric) {
        Some(v) => {
            let mut c = fmt_num(v * r.scale);
            let emulated = r.metric == "nested_reads_per_s" || is_bucket_row(r.metric);
            if emulated && get(&m.results, e, "nested_native") == Some(0.0) {
                c.push_str(" ᵉ");
            }
            c
        }
        None if m
            .failures
            .get(&run)
            .is_some_and(|f| f.contains("time limit")) =>
        {
            "timeout".into()
        }
        None if m.failures.contains_key(&run) && !compaction => "failed".into(),
        None if compaction => "n/a".into(),
        None => "–".into(),
    }
}

/// The last cell of row `r` (and the line's end): deadbolt's ratio to the best of `peers`.
fn vs_best_peer(r: &Row, peers: &[&String], results: &Results) -> String {
    // The first peer with the best figure.
    let best = peers
        .iter()
        .filter_map(|p| get(results, p, r.metric).map(|v| (*p, v)))
        .fold(None::<(&String, f64)>, |acc, (p, v)| match acc {
            Some((_, bv)) if ratio(r, bv, v) >= 1.0 => acc,
            _ => Some((p, v)),
        });
    match (get(results, "deadbolt", r.metric), best) {
        (Some(d), Some((p, v))) if d > 0.0 && v > 0.0 => {
            let x = ratio(r, d, v);
            let mark = if x >= 1.0 { "" } else { " ✗" };
            format!(" **{x:.2}** (vs {p}){mark} |\n")
        }
        (Some(d), Some((p, v))) if r.metric == "strace_syncs" => {
            format!(" {} vs {} ({p}) |\n", fmt_num(d), fmt_num(v))
        }
        _ => " – |\n".into(),
    }
}

/// The legend, deadbolt's own sync count, the known peer problems and the failed runs.
fn notes_under_table(s: &mut String, engines: &[&String], m: &Measured) {
    s.push_str(
        "\n↑ higher is better, ↓ lower is better. ᵉ = the engine has no nested buckets; \
                emulated with the bucket path as a key prefix in one table (9 bytes in the \
                nested-bucket row, the `/`-separated names in the metadata and one-key rows), so a \
                nested read is a plain point read and deleting a bucket deletes its key range. \
                n/a = the engine has no compaction. – = no figure (for the pages row: the engine \
                reports no page counts). ✗ = deadbolt is behind the best peer.\n",
    );
    s.push_str(
        "\nThe metadata and one-key rows run in a second process per engine, each on a fresh \
         database, and do the same work at every `--entries`. Their file sizes are taken with \
         the database closed, except LMDB's, which heed cannot reopen in the same process (its \
         data file does not change at close; so its walk \"after a reopen\" runs on the \
         environment that stayed open, pages mapped). Compaction: deadbolt `Db::compact_into`, Go bbolt \
         `bolt.Compact`, redb `Database::compact`, LMDB `mdb_env_copy2` with compaction.\n",
    );
    if let Some(d) = get(&m.results, "deadbolt", "engine_syncs_per_commit") {
        s.push_str(&format!(
            "\ndeadbolt's own counter (`Stats::syncs`) over the {INDIVIDUAL_COMMITS} individual \
             commits: {d:.2} fdatasync per commit.\n"
        ));
    }
    if !m.have_strace {
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
    for (run, why) in &m.failures {
        match bucket_run_engine(run) {
            Some(e) => s.push_str(&format!(
                "\n**{e}** (bucket workloads): {why}; the bucket workloads after the last figure \
                 shown did not run.\n"
            )),
            None => s.push_str(&format!(
                "\n**{run}**: {why}; the workloads after the last figure shown did not run.\n"
            )),
        }
    }
}

/// The targets of issue 6, in order: what, metric, peer, the ratio needed.
fn target_list() -> Vec<(String, &'static str, &'static str, f64)> {
    let mut v = Vec::new();
    for (m, t) in [
        ("reads_1t_per_s", "1 thread"),
        ("reads_nt_per_s", "all threads"),
    ] {
        v.push((
            format!("Random point reads ({t}) ≥ 1.0× LMDB"),
            m,
            "lmdb",
            1.0,
        ));
    }
    for (peer, need) in [
        ("lmdb", 1.8),
        ("jammdb", 1.8),
        ("bbolt-rs", 1.8),
        (GO_ENGINE, 1.8),
        ("redb", 1.0),
    ] {
        let what = format!("Individual durable commits ≥ {need}× {peer}");
        v.push((
            format!("{what} (interleaved run)"),
            "duel_per_s",
            peer,
            need,
        ));
        let what = format!("{what} (separate processes)");
        v.push((what, "individual_per_s", peer, need));
    }
    for (what, metric, peer) in [
        ("Bulk load no slower than LMDB", "bulk_load_ms", "lmdb"),
        ("Batch writes no slower than LMDB", "batch_ms", "lmdb"),
        ("Removals faster than redb", "removals_ms", "redb"),
        (
            "File size ≤ LMDB's after the same work",
            "size_bytes",
            "lmdb",
        ),
        ("Compacted size ≤ LMDB's", "compacted_bytes", "lmdb"),
    ] {
        v.push((what.into(), metric, peer, 1.0));
    }
    v
}

/// The Targets section: each target's measured ratio and whether it is met.
fn targets(s: &mut String, rows: &[Row], results: &Results) {
    s.push_str("\n## Targets\n\n| Target | measured ratio | met? |\n|---|---:|:---:|\n");
    for (what, metric, peer, need) in target_list() {
        let row = rows.iter().find(|r| r.metric == metric);
        let cell = match (
            row,
            get(results, "deadbolt", metric),
            get(results, peer, metric),
        ) {
            (Some(r), Some(d), Some(p)) if d > 0.0 && p > 0.0 => {
                let x = ratio(r, d, p);
                let ok = if x >= need { "yes" } else { "**no**" };
                format!("{x:.2} | {ok}")
            }
            _ => "– | not measured".into(),
        };
        s.push_str(&format!("| {what} | {cell} |\n"));
    }
}

/// Whether Go bbolt is in the table, and what stands in for it if not.
fn go_note(s: &mut String, results: &Results) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_num_groups_thousands_only_without_decimals() {
        assert_eq!(fmt_num(1_234_567.4), "1,234,567");
        assert_eq!(fmt_num(100.0), "100");
        assert_eq!(fmt_num(99.94), "99.9");
        assert_eq!(fmt_num(7.356), "7.36");
    }

    #[test]
    fn bucket_rows_are_sizes_of_the_best_peer_and_fail_on_their_own() {
        let mut m = Measured::default();
        for (e, metric, v) in [
            ("deadbolt", "one_key_size_bytes", 80.0 * (1 << 20) as f64),
            ("deadbolt", "size_bytes", 4.0 * (1 << 20) as f64),
            ("bbolt-go", "one_key_size_bytes", 4.0 * (1 << 20) as f64),
            ("redb", "one_key_size_bytes", 8.0 * (1 << 20) as f64),
            ("redb", "nested_native", 0.0),
            ("lmdb", "size_bytes", 2.0 * (1 << 20) as f64),
        ] {
            m.results
                .entry(e.into())
                .or_default()
                .insert(metric.into(), v);
        }
        m.failures.insert(
            bucket_run("lmdb"),
            "child process failed (exit status: 1)".into(),
        );
        let names: Vec<String> = ["deadbolt", "redb", "lmdb", "bbolt-go"]
            .map(String::from)
            .into();
        let engines: Vec<&String> = names.iter().collect();
        let mut s = String::new();
        results_table(&mut s, &rows(10_000, &m.results), &engines, &m);
        let line = |prefix: &str| {
            s.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no row {prefix:?} in\n{s}"))
                .to_string()
        };
        assert_eq!(
            line("| 10,000 one-key buckets"),
            format!(
                "| {} | MiB ↓ | 80.0 | 8.00 ᵉ | failed | 4.00 | **0.05** (vs bbolt-go) ✗ |",
                label("one_key_size_bytes", 10_000, 2.0)
            )
        );
        // The bucket child's failure is not the main child's: LMDB's main figures stand.
        assert!(line("| File size after all").contains("| 4.00 | – | 2.00 | – |"));
        assert!(line("| Metadata: file size after those").contains("| n/a | n/a | n/a | n/a |"));
        let mut notes = String::new();
        notes_under_table(&mut notes, &engines, &m);
        assert!(notes.contains("**lmdb** (bucket workloads): child process failed"));
    }

    #[test]
    fn every_row_has_a_label() {
        let rows = rows(10_000, &Results::new());
        assert_eq!(rows.len(), ROWS.len());
        assert_eq!(rows[3].label, "Batch writes: 10 transactions × 1000 keys");
    }
}
