//! The real-kernel power-cut tier: deadbolt's real `FileStorage` (pwrite, fdatasync, the
//! read-only mmap, flock, atomic creation by temp file + rename + directory fsync, set_len)
//! runs in a child process on the FUSE file system of this crate, through the kernel's page
//! cache. The child (the harness's tier-3 child) acknowledges each commit on a pipe; it is
//! SIGKILLed at a random moment or when power fails at a chosen sync, the file system loses
//! its volatile layer in one of the [`Loss`] modes, is unmounted and mounted again (a fresh
//! page cache), and the database is reopened through `FileStorage` and checked by the
//! harness's oracle (`History`, `check_open` under `Strictness::Full`: every acknowledged
//! commit present, the state exactly that of one commit, the integrity check clean).
//!
//! Seeds: `FI_KERNEL_SEED=<n>` replaces the base seed; a failure prints the seed and round.
//! Needs /dev/fuse and root; without them the test fails (it never skips).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadbolt::{Db, Error, FileOptions, FileStorage, Options, DEFAULT_PAGE_SIZE};
use deadbolt_kernel_tier::{Control, Counters, FsState, Loss, Mount, SyncTrap};
use fault_injection::child::{kill_ops, last_commit};
use fault_injection::engine::{Deadbolt, Engine, OpenOpts};
use fault_injection::model::State;
use fault_injection::oracle::{check_open, Entry, History, Label, Strictness};
use fault_injection::rng::{mix, Rng};

/// Every wait on a child or a pipe ends by then.
const ROUND_DEADLINE: Duration = Duration::from_secs(20);
/// Most commits one round lets the child make before it is killed anyway.
const MAX_ACKS_PER_ROUND: u64 = 60;

fn base_seed() -> u64 {
    std::env::var("FI_KERNEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b65_726e)
}

/// A child that is SIGKILLed and reaped when dropped (also when the test panics).
struct ChildGuard(Option<Child>, Control);

impl ChildGuard {
    fn kill_and_reap(&mut self) -> String {
        let Some(mut c) = self.0.take() else {
            return "gone".into();
        };
        let _ = c.kill();
        // A sync the trap holds keeps the killed child in the kernel until it is answered.
        self.1.release_held();
        let t0 = Instant::now();
        loop {
            match c.try_wait() {
                Ok(Some(s)) => return s.to_string(),
                Ok(None) if t0.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => panic!("the child survived SIGKILL for 10 s (stuck in the kernel?)"),
                Err(e) => panic!("waiting for the child: {e}"),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            self.1.release_held();
            let _ = c.wait();
        }
    }
}

/// The kill workload's states, computed once each.
struct States {
    seed: u64,
    states: Vec<Arc<State>>,
}

impl States {
    fn new(seed: u64) -> States {
        States {
            seed,
            states: vec![Arc::new(State::default())],
        }
    }
    fn get(&mut self, n: u64) -> Arc<State> {
        while self.states.len() as u64 <= n {
            let i = self.states.len() as u64;
            let mut st = (**self.states.last().unwrap()).clone();
            st.apply_all(&kill_ops(self.seed, i));
            self.states.push(Arc::new(st));
        }
        self.states[n as usize].clone()
    }
}

/// How one round ends.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// After this many acknowledgements plus this many microseconds.
    Random { acks: u64, delay_us: u64 },
    /// Power fails at a sync (counted from the child's start).
    AtSync(SyncTrap),
}

struct Round {
    kill: Kill,
    loss: Loss,
    /// While the child holds the database, this (another) process tries to open it.
    probe_lock: bool,
    /// The child's `--shrink-every` (0: never) and `--reader`.
    shrink_every: u64,
    reader: bool,
}

impl Round {
    fn new(kill: Kill, loss: Loss) -> Round {
        Round {
            kill,
            loss,
            probe_lock: false,
            shrink_every: 0,
            reader: false,
        }
    }
}

/// What one scenario saw.
#[derive(Default)]
struct Tally {
    rounds: u64,
    acked: u64,
    lost_pending_bytes: u64,
    lost_dir_ops: u64,
    lock_refusals: u64,
    traps_fired: u64,
    counters: Counters,
}

/// Fields drop in order: the mount goes before the temporary directory under it.
struct Scenario {
    mount: Option<Mount>,
    seed: u64,
    mnt: PathBuf,
    db: PathBuf,
    states: States,
    /// The commit the last check recovered (durable: the check's open synced it).
    base: u64,
    rng: Rng,
    tally: Tally,
    _tmp: tempfile::TempDir,
}

fn mount_or_fail(dir: &Path, st: FsState) -> Mount {
    Mount::start(dir, st).unwrap_or_else(|e| {
        panic!(
            "the real-kernel tier cannot run: {e}. It needs /dev/fuse and root (CI has both); \
             it does not skip"
        )
    })
}

impl Scenario {
    fn new(seed: u64) -> Scenario {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mount = mount_or_fail(&mnt, FsState::new());
        let db = mnt.join("kill.db");
        Scenario {
            _tmp: tmp,
            seed,
            mnt,
            db,
            mount: Some(mount),
            states: States::new(seed),
            base: 0,
            rng: Rng::new(mix(seed)),
            tally: Tally::default(),
        }
    }

    fn ctx(&self, round: u64, r: &Round) -> String {
        format!(
            "seed {} (FI_KERNEL_SEED={}), round {round}, kill {:?}, loss {}",
            self.seed,
            self.seed,
            r.kill,
            r.loss.name()
        )
    }

    /// One child lifetime, the power cut and the check.
    fn round(&mut self, r: &Round) {
        let round = self.tally.rounds;
        self.tally.rounds += 1;
        let ctx = self.ctx(round, r);
        let (trap_tx, trap_rx) = mpsc::channel::<u64>();
        if let Kill::AtSync(t) = r.kill {
            self.mount.as_ref().unwrap().state().set_trap(t, trap_tx);
        }
        let (mut child, lines) = self.spawn_child(r);
        let (opened, mut acked, fired) = self.watch(&mut child, &lines, &trap_rx, r, &ctx);
        let status = child.kill_and_reap();
        // Acknowledgements written before the kill are still in the pipe.
        while let Ok(l) = lines.recv_timeout(Duration::from_secs(5)) {
            if let Some(n) = l.strip_prefix("ack ") {
                acked = acked.max(n.parse().unwrap());
            }
        }
        if let Some(o) = opened {
            assert_eq!(
                o, self.base,
                "{ctx}: the child recovered commit {o}, the last check commit {}",
                self.base
            );
        }
        if fired {
            self.tally.traps_fired += 1;
        }
        let start = opened.unwrap_or(self.base);
        self.tally.acked += acked.saturating_sub(start);

        // Power cut: unmount (the page cache goes), drop the volatile layer, mount again.
        let before = self.mount.take().unwrap().unmount().expect("unmount");
        let (lost_bytes, lost_dir) = (before.pending_bytes(), before.dir_pending());
        self.tally.lost_pending_bytes += before.pending_bytes() as u64;
        self.tally.lost_dir_ops += before.dir_pending() as u64;
        self.tally.counters.add(&before.counters);
        let mut lrng = self.rng.fork();
        let after = before.power_loss(r.loss, &mut lrng);
        self.mount = Some(mount_or_fail(&self.mnt, after));

        // The oracle: the last check's commit is the durable base, every acknowledged commit
        // is durable, the one after the last acknowledgement may or may not be there.
        let last_acked = acked.max(start);
        let mut hist = History {
            entries: vec![Entry {
                state: self.states.get(self.base),
                label: Label::Base,
                txid: None,
                // The open cost (I12) is checked by the simulated tiers, which measure pages.
                pages: None,
            }],
        };
        for k in self.base + 1..=last_acked + 1 {
            let label = if k <= last_acked {
                Label::DurableAck
            } else {
                Label::InFlight
            };
            hist.entries.push(Entry {
                state: self.states.get(k),
                label,
                txid: None,
                pages: None,
            });
        }
        let fo = FileOptions {
            read_only: false,
            create: true,
            lock_timeout: Some(Duration::from_secs(5)),
        };
        let (storage, _) = FileStorage::open(&self.db, &fo)
            .unwrap_or_else(|e| panic!("{ctx}: reopening the file after the power cut: {e}"));
        let opts = OpenOpts {
            page_size: DEFAULT_PAGE_SIZE,
            no_sync: false,
        };
        let db = Deadbolt.open(Arc::new(storage), &opts).unwrap_or_else(|e| {
            panic!("{ctx}: open after the power cut failed: {e} (child {status}, acked {acked})")
        });
        let v = check_open(&*db, &hist, Strictness::Full);
        if let Some(msg) = &v.violation {
            panic!("{ctx}: VIOLATION {msg} (child {status}, opened at {opened:?}, acked {acked})");
        }
        let j = v
            .matched
            .expect("a verdict without a violation names the commit") as u64;
        let recovered = self.base + j;
        assert_eq!(
            last_commit(&self.states.get(recovered)),
            recovered,
            "{ctx}: the workload's commit counter"
        );
        self.base = recovered;
        drop(db);
        println!(
            "{ctx}: child {status}, opened at {opened:?}, acked {acked}, power lost {} unsynced bytes and {} directory ops, recovered commit {recovered}: ok",
            lost_bytes, lost_dir
        );
    }

    fn spawn_child(&self, r: &Round) -> (ChildGuard, Receiver<String>) {
        let exe = env!("CARGO_BIN_EXE_deadbolt-kernel-tier");
        let mut cmd = Command::new(exe);
        cmd.args([
            "child",
            "--path",
            self.db.to_str().unwrap(),
            "--seed",
            &self.seed.to_string(),
            "--shrink-every",
            &r.shrink_every.to_string(),
        ]);
        if r.reader {
            cmd.arg("--reader");
        }
        let mut c = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = c.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        (
            ChildGuard(Some(c), self.mount.as_ref().unwrap().control()),
            rx,
        )
    }

    /// Follow the child until it is time to kill it: `(opened at, last ack, trap fired)`.
    fn watch(
        &mut self,
        child: &mut ChildGuard,
        lines: &Receiver<String>,
        trap: &Receiver<u64>,
        r: &Round,
        ctx: &str,
    ) -> (Option<u64>, u64, bool) {
        let t0 = Instant::now();
        let mut opened = None;
        let mut acked = 0;
        let mut probed = false;
        loop {
            assert!(
                t0.elapsed() < ROUND_DEADLINE,
                "{ctx}: the round did not end within {ROUND_DEADLINE:?} (opened {opened:?}, acked {acked})"
            );
            if let Kill::AtSync(_) = r.kill {
                if trap.try_recv().is_ok() {
                    return (opened, acked, true);
                }
            }
            match lines.recv_timeout(Duration::from_millis(2)) {
                Ok(l) => {
                    if let Some(n) = l.strip_prefix("open ") {
                        opened = Some(n.parse::<u64>().unwrap());
                        acked = opened.unwrap();
                    } else if let Some(n) = l.strip_prefix("ack ") {
                        acked = n.parse().unwrap();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The child ended by itself: only expected once power failed under it
                    // (its writes then fail with EIO) or when it hit the acknowledgement cap.
                    let fired = trap.try_recv().is_ok();
                    assert!(
                        fired || acked >= MAX_ACKS_PER_ROUND,
                        "{ctx}: the child exited by itself ({}) with power on",
                        child.kill_and_reap()
                    );
                    return (opened, acked, fired);
                }
            }
            let Some(o) = opened else { continue };
            if r.probe_lock && !probed && acked > o {
                probed = true;
                self.probe_lock(ctx);
            }
            let done = acked - o;
            match r.kill {
                Kill::Random { acks, delay_us } if done >= acks => {
                    std::thread::sleep(Duration::from_micros(delay_us));
                    return (opened, acked, false);
                }
                _ if done >= MAX_ACKS_PER_ROUND => return (opened, acked, false),
                _ => {}
            }
        }
    }

    /// Another process (this one) opens the database the child holds: the flock, kept by the
    /// kernel for the FUSE mount, must refuse it.
    fn probe_lock(&mut self, ctx: &str) {
        let opts = Options {
            lock_timeout: Some(Duration::from_millis(30)),
            confirm_after: None,
            ..Options::default()
        };
        match Db::open_with(&self.db, opts) {
            Err(Error::LockTimeout) => self.tally.lock_refusals += 1,
            Err(e) => panic!("{ctx}: a second process opening the held database: {e}"),
            Ok(_) => panic!("{ctx}: a second process opened the database the child holds"),
        }
    }

    fn finish(mut self, what: &str) -> Tally {
        let m = self.mount.take().unwrap();
        let st = m.unmount().expect("final unmount");
        assert!(
            st.names().iter().any(|n| n == "kill.db"),
            "{what}: the database file is gone"
        );
        self.tally
    }
}

fn report(what: &str, t: &Tally, t0: Instant) {
    let c = &t.counters;
    println!(
        "{what}: {} rounds, {} acknowledged commits, {} traps fired, {} lock refusals, power lost {} unsynced bytes and {} directory ops; FUSE saw {} writes, {} reads, {} fsyncs, {} fsyncdirs, {} creates, {} renames, {} grows, {} shrinks; {:.1}s",
        t.rounds,
        t.acked,
        t.traps_fired,
        t.lock_refusals,
        t.lost_pending_bytes,
        t.lost_dir_ops,
        c.writes,
        c.reads,
        c.fsyncs,
        c.fsyncdirs,
        c.creates,
        c.renames,
        c.grows,
        c.shrinks,
        t0.elapsed().as_secs_f64()
    );
}

/// Priority 1: SIGKILL at random moments, power lost with nothing unsynced surviving,
/// remount, reopen, oracle; a few seeds of several rounds each.
#[test]
fn sigkill_then_drop_all_unsynced() {
    let t0 = Instant::now();
    let mut total = Tally::default();
    for s in 0..3u64 {
        let seed = base_seed() + s;
        let mut sc = Scenario::new(seed);
        for i in 0..4 {
            let acks = sc.rng.range(1, 20);
            let delay_us = sc.rng.below(3000);
            sc.round(&Round {
                probe_lock: i % 2 == 0,
                reader: i % 2 == 1,
                ..Round::new(Kill::Random { acks, delay_us }, Loss::DropAll)
            });
        }
        let t = sc.finish("drop-all");
        total.rounds += t.rounds;
        total.acked += t.acked;
        total.lock_refusals += t.lock_refusals;
        total.lost_pending_bytes += t.lost_pending_bytes;
        total.lost_dir_ops += t.lost_dir_ops;
        total.counters.add(&t.counters);
    }
    report("drop-all after SIGKILL", &total, t0);
    let c = &total.counters;
    assert!(total.acked > 0, "no commit was acknowledged");
    assert!(total.lock_refusals > 0, "the lock was never probed");
    assert!(
        c.creates > 0 && c.renames > 0 && c.fsyncdirs > 0,
        "creation was not exercised"
    );
    assert!(c.reads > 0, "nothing was read through FUSE (the mapping)");
}

/// Priority 2: every loss mode after random kills.
#[test]
fn sigkill_then_every_loss_mode() {
    let t0 = Instant::now();
    let seed = base_seed() ^ 0x10;
    let mut sc = Scenario::new(seed);
    for i in 0..24 {
        let acks = sc.rng.range(1, 25);
        let delay_us = sc.rng.below(3000);
        sc.round(&Round {
            probe_lock: i % 3 == 0,
            reader: i % 3 == 1,
            shrink_every: if i % 2 == 1 { 3 } else { 0 },
            ..Round::new(Kill::Random { acks, delay_us }, Loss::ALL[i % 4])
        });
    }
    let t = sc.finish("every loss mode");
    report("every loss mode after SIGKILL", &t, t0);
    assert!(t.acked > 0, "no commit was acknowledged");
    assert!(t.counters.grows > 0, "the file never grew");
    assert!(t.counters.shrinks > 0, "the file never shrank");
}

/// Priority 2 and 3: power fails at each of the first syncs of a fresh file system (inside
/// creation: the temporary file's sync, the directory sync; then the commits' syncs), before
/// or just after the sync takes effect, with every loss mode; then a second lifetime with a
/// random kill checks that the recovered database takes commits and survives again.
#[test]
fn power_fails_at_each_sync() {
    let t0 = Instant::now();
    let mut total = Tally::default();
    for at in 1..=16u64 {
        for after in [false, true] {
            let seed = base_seed() ^ (at << 8) ^ (after as u64);
            let mut sc = Scenario::new(seed);
            let loss = Loss::ALL[(at as usize + after as usize) % 4];
            sc.round(&Round {
                shrink_every: if after { 2 } else { 0 },
                ..Round::new(Kill::AtSync(SyncTrap { at, after }), loss)
            });
            let acks = sc.rng.range(1, 6);
            sc.round(&Round {
                reader: true,
                shrink_every: 2,
                probe_lock: true,
                ..Round::new(
                    Kill::Random { acks, delay_us: 0 },
                    Loss::ALL[at as usize % 4],
                )
            });
            let t = sc.finish("at each sync");
            total.rounds += t.rounds;
            total.acked += t.acked;
            total.traps_fired += t.traps_fired;
            total.lock_refusals += t.lock_refusals;
            total.lost_pending_bytes += t.lost_pending_bytes;
            total.lost_dir_ops += t.lost_dir_ops;
            total.counters.add(&t.counters);
        }
    }
    report("power fails at each sync", &total, t0);
    assert_eq!(total.traps_fired, 32, "every sync trap fired");
    assert!(
        total.lost_dir_ops > 0,
        "no power cut hit an unsynced directory entry"
    );
    assert!(
        total.lost_pending_bytes > 0,
        "no power cut hit unsynced data"
    );
}
