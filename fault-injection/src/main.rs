//! The harness's command line: the torture runner (tier 2), case replay, the exhaustive tier
//! outside `cargo test`, and the child process of the kill test (tier 3).
//!
//! `cargo run --release -p fault-injection -- torture --seed N --duration 60s`

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use fault_injection::coverage::{Coverage, PathId};
use fault_injection::engine::{Deadbolt, Engine, Toy, ToyBug};
use fault_injection::torture::{case_seed, run_case};

// ---------------------------------------------------------------------------------------------
// Allocation guard (F15): one allocation above the cap, or more live bytes than the budget,
// is a runaway allocation. The process reports it on stderr and aborts; the supervisor turns
// that into a violation with the case seed.

struct Guard;

static LIVE: AtomicUsize = AtomicUsize::new(0);
const MAX_ONE: usize = 1 << 30;
const MAX_LIVE: usize = 6 << 30;

fn runaway(msg: &[u8]) -> ! {
    let _ = std::io::stderr().write_all(msg);
    std::process::abort()
}

/// One allocation of `size` bytes above the cap is a runaway.
fn check_one(size: usize) {
    if size > MAX_ONE {
        runaway(b"RUNAWAY-ALLOCATION: a single allocation above 1 GiB\n");
    }
}

/// `more` bytes become live; past the budget that is a runaway.
fn add_live(more: usize) {
    if LIVE.fetch_add(more, Ordering::Relaxed) + more > MAX_LIVE {
        runaway(b"RUNAWAY-ALLOCATION: more than 6 GiB live\n");
    }
}

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        check_one(l.size());
        add_live(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        check_one(l.size());
        add_live(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        check_one(new);
        if new > l.size() {
            add_live(new - l.size());
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Guard = Guard;

// ---------------------------------------------------------------------------------------------

#[derive(Parser)]
#[command(
    name = "fault-injection",
    about = "deadbolt power-cut and fault-injection harness"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineArg {
    Deadbolt,
    /// The harness's tiny reference engine (validates the harness itself).
    Toy,
    ToyAckBeforeSync,
    ToyMetaBeforeData,
    ToySkipOpenVerify,
    ToyRetryFailedSync,
}

impl EngineArg {
    fn engine(self) -> Box<dyn Engine> {
        match self {
            EngineArg::Deadbolt => Box::new(Deadbolt),
            EngineArg::Toy => Box::new(Toy(ToyBug::None)),
            EngineArg::ToyAckBeforeSync => Box::new(Toy(ToyBug::AckBeforeSync)),
            EngineArg::ToyMetaBeforeData => Box::new(Toy(ToyBug::MetaBeforeData)),
            EngineArg::ToySkipOpenVerify => Box::new(Toy(ToyBug::SkipOpenVerify)),
            EngineArg::ToyRetryFailedSync => Box::new(Toy(ToyBug::RetryFailedSync)),
        }
    }
    fn flag(self) -> &'static str {
        match self {
            EngineArg::Deadbolt => "deadbolt",
            EngineArg::Toy => "toy",
            EngineArg::ToyAckBeforeSync => "toy-ack-before-sync",
            EngineArg::ToyMetaBeforeData => "toy-meta-before-data",
            EngineArg::ToySkipOpenVerify => "toy-skip-open-verify",
            EngineArg::ToyRetryFailedSync => "toy-retry-failed-sync",
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Tier 2: random crash-recover-verify cases until the duration is spent.
    Torture {
        #[arg(long, default_value_t = 1, value_parser = parse_u64)]
        seed: u64,
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        /// Worker processes (each single-threaded).
        #[arg(long, default_value_t = 1)]
        jobs: u64,
        /// Stop after this many cases (default: until the duration is spent).
        #[arg(long)]
        cases: Option<u64>,
        /// A case that reports nothing for this long is a hang (a violation).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        hang_timeout: Duration,
        #[arg(long, value_enum, default_value_t = EngineArg::Deadbolt)]
        engine: EngineArg,
        /// Stop at the first violation.
        #[arg(long)]
        stop_on_violation: bool,
        /// Small databases only: 1-4 KiB pages, values up to 64 bytes, few keys and commits
        /// (the configuration the states/second figure is quoted for).
        #[arg(long)]
        small: bool,
    },
    /// Re-run one torture case in this process and print its verdict.
    Replay {
        #[arg(long, value_parser = parse_u64)]
        case_seed: u64,
        #[arg(long, value_enum, default_value_t = EngineArg::Deadbolt)]
        engine: EngineArg,
        /// Run it twice and require the same digest (determinism, I10).
        #[arg(long)]
        twice: bool,
        /// The case came from a `--small` torture run.
        #[arg(long)]
        small: bool,
    },
    /// Tier 1 outside `cargo test`: the bounded exhaustive matrix (optionally filtered).
    Exhaustive {
        /// Only configurations whose description contains this text.
        #[arg(long, default_value = "")]
        filter: String,
        #[arg(long, value_enum, default_value_t = EngineArg::Deadbolt)]
        engine: EngineArg,
        /// Per configuration, crash the commit after a fallen-back recovery at every op for
        /// this many images (16 = the CI tier's setting).
        #[arg(long, default_value_t = 16)]
        full_probes: usize,
    },
    /// F15: craft a self-referencing branch page with valid checksums and check that the
    /// engine reports corruption (exit 0) instead of descending forever.
    CraftedCycle {
        #[arg(long, default_value_t = 1024)]
        page_size: usize,
    },
    /// (internal) A worker process of `torture`.
    #[command(hide = true)]
    Worker {
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
        #[arg(long)]
        start: u64,
        #[arg(long)]
        stride: u64,
        #[arg(long)]
        end: u64,
        #[arg(long)]
        millis: u64,
        #[arg(long, value_enum)]
        engine: EngineArg,
        #[arg(long)]
        small: bool,
    },
    /// (internal) Tier 3 child: commit through the real file until killed, acknowledging on stdout.
    Child {
        #[arg(long)]
        path: std::path::PathBuf,
        #[arg(long, value_parser = parse_u64)]
        seed: u64,
    },
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).map_err(|e| e.to_string())
    } else {
        s.parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 60s, 5m, 500ms)"))?;
    Ok(Duration::from_secs_f64(v * mult))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Torture {
            seed,
            duration,
            jobs,
            cases,
            hang_timeout,
            engine,
            stop_on_violation,
            small,
        } => torture(
            seed,
            duration,
            jobs.max(1),
            cases,
            hang_timeout,
            engine,
            stop_on_violation,
            small,
        ),
        Cmd::Replay {
            case_seed,
            engine,
            twice,
            small,
        } => replay(case_seed, engine, twice, small),
        Cmd::Worker {
            seed,
            start,
            stride,
            end,
            millis,
            engine,
            small,
        } => worker(seed, start, stride, end, millis, engine, small),
        Cmd::Exhaustive {
            filter,
            engine,
            full_probes,
        } => exhaustive(&filter, engine, full_probes),
        Cmd::CraftedCycle { page_size } => {
            match fault_injection::crafted::crafted_cycle_check(page_size) {
                Ok(m) => {
                    println!("detected: {m}");
                    ExitCode::SUCCESS
                }
                Err(m) => {
                    println!("VIOLATION: {m}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Child { path, seed } => fault_injection::child::run(&path, seed),
    }
}

fn exhaustive(filter: &str, engine: EngineArg, full_probes: usize) -> ExitCode {
    let e = engine.engine();
    let t = Instant::now();
    let mut total = fault_injection::run::Report::default();
    for cfg in fault_injection::run::ci_matrix_with(full_probes) {
        if !cfg.describe().contains(filter) {
            continue;
        }
        let t1 = Instant::now();
        let r = fault_injection::run::exhaustive(&*e, &cfg);
        println!(
            "{}: {} crash points, {} images, {} detected, {} violations, {:.2}s",
            cfg.describe(),
            r.crash_points,
            r.images,
            r.detected,
            r.violations.len(),
            t1.elapsed().as_secs_f64()
        );
        for v in r.violations.iter().take(5) {
            println!("  VIOLATION {v}");
        }
        total.merge(r);
    }
    println!(
        "exhaustive: {} crash points, {} crash images checked, {} detected, in {:.1}s, {} violations",
        total.crash_points,
        total.images,
        total.detected,
        t.elapsed().as_secs_f64(),
        total.violations.len()
    );
    if total.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(case_seed: u64, engine: EngineArg, twice: bool, small: bool) -> ExitCode {
    let e = engine.engine();
    let t = Instant::now();
    let run = |e: &dyn Engine| {
        if small {
            fault_injection::torture::run_case_small(e, case_seed)
        } else {
            run_case(e, case_seed)
        }
    };
    let r = run(&*e);
    println!(
        "case {case_seed:#018x} [{}]: {} cycles, {} commits, {} crash states ({} detected), digest {:#018x}, {:.2}s",
        r.describe,
        r.cycles,
        r.commits,
        r.states,
        r.detected,
        r.digest,
        t.elapsed().as_secs_f64()
    );
    for v in &r.violations {
        println!("VIOLATION: {v}");
    }
    let mut ok = r.violations.is_empty();
    if twice {
        let r2 = run(&*e);
        if r2.digest != r.digest || r2.violations != r.violations {
            println!(
                "NONDETERMINISM: second run digest {:#018x} != {:#018x}",
                r2.digest, r.digest
            );
            ok = false;
        } else {
            println!("deterministic: second run gave the same digest and verdict");
        }
    }
    println!("{} violations", r.violations.len());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn worker(
    seed: u64,
    start: u64,
    stride: u64,
    end: u64,
    millis: u64,
    engine: EngineArg,
    small: bool,
) -> ExitCode {
    let e = engine.engine();
    let deadline = Instant::now() + Duration::from_millis(millis);
    let out = std::io::stdout();
    let mut i = start;
    while i < end && Instant::now() < deadline {
        let cs = case_seed(seed, i);
        {
            let mut o = out.lock();
            let _ = writeln!(o, "B {i} {cs}");
            let _ = o.flush();
        }
        // Self-test hooks for the supervisor: die or hang inside a chosen case.
        if std::env::var("FI_SELFTEST_ABORT_CASE").ok() == Some(i.to_string()) {
            std::process::abort();
        }
        if std::env::var("FI_SELFTEST_HANG_CASE").ok() == Some(i.to_string()) {
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let cost_before = fault_injection::oracle::open_cost_checks();
        let mut r = if small {
            fault_injection::torture::run_case_small(&*e, cs)
        } else {
            run_case(&*e, cs)
        };
        // Counts kept outside the case's coverage travel in it to the supervisor.
        r.cov.add(PathId::ReaderChecked, r.reader_checks);
        r.cov.add(PathId::ReadFault, r.read_faults);
        r.cov.add(
            PathId::OpenCostChecked,
            fault_injection::oracle::open_cost_checks() - cost_before,
        );
        let mut o = out.lock();
        for v in &r.violations {
            let _ = writeln!(o, "V {i} {cs} [{}] {}", r.describe, v.replace('\n', " "));
        }
        let _ = writeln!(
            o,
            "E {i} {cs} {} {} {}",
            r.states,
            r.violations.len(),
            r.cov.to_fields()
        );
        let _ = o.flush();
        i += stride;
    }
    let _ = writeln!(out.lock(), "D {i}");
    ExitCode::SUCCESS
}

struct Violation {
    case: u64,
    seed: u64,
    msg: String,
}

/// What a worker's reader thread sends: the worker's slot and a line of its stdout, or `None`
/// when its stdout closed.
type Msg = (u64, Option<String>);

#[allow(clippy::too_many_arguments)]
fn torture(
    seed: u64,
    duration: Duration,
    jobs: u64,
    cases: Option<u64>,
    hang: Duration,
    engine: EngineArg,
    stop_on_violation: bool,
    small: bool,
) -> ExitCode {
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut sup = Supervisor {
        exe: std::env::current_exe().expect("current exe"),
        seed,
        duration,
        jobs,
        end_case: cases.unwrap_or(u64::MAX),
        hang,
        engine,
        small,
        t0: Instant::now(),
        tx,
        slots: (0..jobs).map(Slot::new).collect(),
        violations: Vec::new(),
        states: 0,
        done_cases: 0,
        cov: Coverage::default(),
    };
    for w in 0..jobs {
        sup.spawn(w);
    }
    let mut last_report = Instant::now();
    while sup.slots.iter().any(|s| !s.finished) {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok((w, Some(line))) => sup.on_line(w, &line),
            Ok((w, None)) => sup.on_closed(w),
            Err(_) => {}
        }
        sup.kill_hung();
        if stop_on_violation && !sup.violations.is_empty() {
            sup.stop_all();
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "torture: {:.0}s: {} cases, {} crash states, {} violations",
                sup.t0.elapsed().as_secs_f64(),
                sup.done_cases,
                sup.states,
                sup.violations.len()
            );
        }
    }
    sup.summary()
}

/// Per worker slot: next case index, current case in progress, child.
struct Slot {
    next: u64,
    current: Option<(u64, u64, Instant)>,
    child: Option<std::process::Child>,
    finished: bool,
    killed: bool,
    stderr_tail: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Slot {
    fn new(w: u64) -> Slot {
        Slot {
            next: w,
            current: None,
            child: None,
            finished: false,
            killed: false,
            stderr_tail: Default::default(),
        }
    }
}

/// The torture run's supervisor: worker processes, one per slot, each running every `jobs`-th
/// case; it collects their reports and turns a death or a hang into a violation.
struct Supervisor {
    exe: std::path::PathBuf,
    seed: u64,
    duration: Duration,
    jobs: u64,
    end_case: u64,
    hang: Duration,
    engine: EngineArg,
    small: bool,
    t0: Instant,
    tx: mpsc::Sender<Msg>,
    slots: Vec<Slot>,
    violations: Vec<Violation>,
    states: u64,
    done_cases: u64,
    /// Path coverage summed over the finished cases.
    cov: Coverage,
}

/// Below this many cases a run is too short for the coverage assertion.
const COVERAGE_MIN_CASES: u64 = 500;

impl Supervisor {
    /// Start a worker for slot `w` from its next case with the time left, or mark the slot
    /// finished when there is none.
    fn spawn(&mut self, w: u64) {
        let slot = &mut self.slots[w as usize];
        let left = self.duration.saturating_sub(self.t0.elapsed());
        if left.is_zero() || slot.next >= self.end_case {
            slot.finished = true;
            return;
        }
        let mut cmd = Command::new(&self.exe);
        cmd.args([
            "worker",
            "--seed",
            &self.seed.to_string(),
            "--start",
            &slot.next.to_string(),
            "--stride",
            &self.jobs.to_string(),
            "--end",
            &self.end_case.to_string(),
            "--millis",
            &left.as_millis().to_string(),
            "--engine",
            self.engine.flag(),
        ]);
        if self.small {
            cmd.arg("--small");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let txo = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if txo.send((w, Some(line))).is_err() {
                    return;
                }
            }
            let _ = txo.send((w, None));
        });
        let tail = slot.stderr_tail.clone();
        tail.lock().unwrap().clear();
        std::thread::spawn(move || keep_tail(stderr, &tail));
        slot.child = Some(child);
        slot.current = None;
    }

    /// A line of worker `w`'s protocol: `B` (case begun), `V` (violation), `E` (case ended).
    fn on_line(&mut self, w: u64, line: &str) {
        let slot = &mut self.slots[w as usize];
        let mut parts = line.splitn(4, ' ');
        let tag = parts.next().unwrap_or("");
        let idx: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let cs: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let rest = parts.next().unwrap_or("");
        match tag {
            "B" => slot.current = Some((idx, cs, Instant::now())),
            "V" => self.violations.push(Violation {
                case: idx,
                seed: cs,
                msg: rest.to_string(),
            }),
            "E" => {
                let mut f = rest.split(' ');
                self.states += f.next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                self.cov.merge(&Coverage::from_fields(f.skip(1)));
                self.done_cases += 1;
                slot.current = None;
                slot.next = idx + self.jobs;
            }
            _ => {}
        }
    }

    /// Worker `w`'s stdout closed: it finished, or died. A death inside a case is a
    /// violation; a dead or killed worker is replaced.
    fn on_closed(&mut self, w: u64) {
        let slot = &mut self.slots[w as usize];
        let status = slot.child.take().map(|mut c| c.wait());
        if let Some((idx, cs, _)) = slot.current.take() {
            std::thread::sleep(Duration::from_millis(50));
            let tail = slot.stderr_tail.lock().unwrap().clone();
            self.violations.push(Violation {
                case: idx,
                seed: cs,
                msg: format!(
                    "I7: the worker process died during the case ({:?}): abort, stack overflow, runaway allocation or signal; stderr: {}",
                    status.and_then(|s| s.ok()),
                    tail.trim()
                ),
            });
            slot.next = idx + self.jobs;
            self.done_cases += 1;
            self.spawn(w);
        } else if slot.killed {
            slot.killed = false;
            self.spawn(w);
        } else {
            slot.finished = true;
        }
    }

    /// Hang detection: a case without progress for too long.
    fn kill_hung(&mut self) {
        for slot in self.slots.iter_mut() {
            if let Some((idx, cs, since)) = slot.current {
                if since.elapsed() > self.hang {
                    if let Some(c) = slot.child.as_mut() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    slot.child = None;
                    slot.killed = true;
                    self.violations.push(Violation {
                        case: idx,
                        seed: cs,
                        msg: format!(
                            "I7: hang: the case made no progress for {}s (step budget)",
                            self.hang.as_secs()
                        ),
                    });
                    slot.current = None;
                    slot.next = idx + self.jobs;
                    self.done_cases += 1;
                    // The reader thread reports the closed pipe; the worker is respawned there.
                }
            }
        }
    }

    fn stop_all(&mut self) {
        for s in self.slots.iter_mut() {
            if let Some(c) = s.child.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            s.finished = true;
            s.killed = false;
        }
    }

    /// Every violation with its replay command, then the totals line.
    fn summary(&self) -> ExitCode {
        let secs = self.t0.elapsed().as_secs_f64();
        let engine = self.engine;
        for v in &self.violations {
            println!("VIOLATION case {} seed {:#018x}: {}", v.case, v.seed, v.msg);
            println!(
                "  replay: cargo run --release -p fault-injection -- replay --case-seed {:#018x}{}{}",
                v.seed,
                if matches!(engine, EngineArg::Deadbolt) {
                    String::new()
                } else {
                    format!(" --engine {}", engine.flag())
                },
                if self.small { " --small" } else { "" }
            );
        }
        let (states, jobs) = (self.states, self.jobs);
        println!(
            "path coverage over {} cases:\n{}",
            self.done_cases, self.cov
        );
        // Fail on a path that never ran, for the engine and mix that are meant to reach them.
        let asserted = matches!(engine, EngineArg::Deadbolt)
            && !self.small
            && self.done_cases >= COVERAGE_MIN_CASES;
        let missing = if asserted {
            self.cov.missing(&PathId::torture())
        } else {
            Vec::new()
        };
        if !missing.is_empty() {
            println!("COVERAGE: paths never reached: {missing:?}");
        } else if !asserted {
            println!(
                "coverage not asserted (deadbolt, default mix, at least {COVERAGE_MIN_CASES} cases only)"
            );
        }
        println!(
            "torture seed {}: {} cases, {states} crash states checked in {secs:.1}s, {:.0} states/s ({:.0} states/s/core, {jobs} worker(s)), {} lifetimes protocol-monitored, {} crashes inside the commit after a rollback, {} violations",
            self.seed,
            self.done_cases,
            states as f64 / secs,
            states as f64 / secs / jobs as f64,
            self.cov.get(PathId::ProtocolMonitored),
            self.cov.get(PathId::CrashAfterRollback),
            self.violations.len()
        );
        let readers = self.cov.get(PathId::ReaderChecked);
        if self.done_cases >= 50 && readers == 0 {
            // A third of the cycles run a reader lifetime: none in 50 cases means the check
            // itself is broken.
            println!(
                "no long-lived reader was checked in {} cases",
                self.done_cases
            );
            return ExitCode::FAILURE;
        }
        if self.violations.is_empty() && missing.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Keep the last 2,000 bytes or so of a worker's stderr in `tail` (the message a dying worker
/// leaves, for the violation).
fn keep_tail(stderr: impl std::io::Read, tail: &std::sync::Mutex<String>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let mut t = tail.lock().unwrap();
        t.push_str(&line);
        t.push(' ');
        if t.len() > 2000 {
            let cut = t.len() - 2000;
            let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
            t.drain(..cut);
        }
    }
}
