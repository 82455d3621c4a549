//! Tier 3: a real child process committing through the real file implementation
//! ([`deadbolt::FileStorage`] via `Db::open_with`), acknowledging each commit on stdout
//! after `commit` returned, until the parent kills it with SIGKILL.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use deadbolt::{Db, Options};

use crate::engine::{commit_ops, scan_db};
use crate::model::{Op, State};
use crate::rng::{mix, Rng};

/// The ops of commit `i` (1-based) of the kill workload for `seed`.
pub fn kill_ops(seed: u64, i: u64) -> Vec<Op> {
    let mut r = Rng::new(mix(seed ^ mix(i)));
    let data = vec![b"data".to_vec()];
    let meta = vec![b"meta".to_vec()];
    let mut ops = vec![
        Op::CreateBucket(data.clone()),
        Op::CreateBucket(meta.clone()),
    ];
    let size = match r.below(10) {
        0 => 0,
        1..=6 => 1 + r.below_usize(200),
        7 | 8 => 1000 + r.below_usize(4000),
        _ => 5000 + r.below_usize(20000),
    };
    ops.push(Op::Put(
        data.clone(),
        format!("c{i:06}").into_bytes(),
        r.bytes(size),
    ));
    if i.is_multiple_of(4) && i > 3 {
        ops.push(Op::Delete(
            data.clone(),
            format!("c{:06}", i - 3).into_bytes(),
        ));
    }
    if i.is_multiple_of(7) {
        let n = r.below_usize(3000);
        ops.push(Op::Put(data, b"hot".to_vec(), r.bytes(n)));
    }
    ops.push(Op::Put(meta, b"last".to_vec(), i.to_le_bytes().to_vec()));
    ops
}

/// The model state after commits 1..=n.
pub fn kill_state(seed: u64, n: u64) -> State {
    let mut st = State::default();
    for i in 1..=n {
        st.apply_all(&kill_ops(seed, i));
    }
    st
}

/// The last commit recorded in a state (0 for an empty database).
pub fn last_commit(st: &State) -> u64 {
    st.at(&[b"meta".to_vec()])
        .and_then(|b| b.kv.get(b"last".as_slice()))
        .and_then(|v| v.as_slice().try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The child: open, continue after the last recovered commit, acknowledge each commit.
pub fn run(path: &Path, seed: u64) -> ExitCode {
    let db = match Db::open_with(path, Options::default()) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("child: open failed: {e}");
            return ExitCode::from(2);
        }
    };
    let st = match scan_db(&db) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("child: read failed: {e}");
            return ExitCode::from(2);
        }
    };
    let start = last_commit(&st) + 1;
    let out = std::io::stdout();
    println!("open {}", start - 1);
    for i in start..start + 100_000 {
        if let Err(e) = commit_ops(&db, &kill_ops(seed, i)) {
            eprintln!("child: commit {i} failed: {e}");
            return ExitCode::from(3);
        }
        let mut o = out.lock();
        let _ = writeln!(o, "ack {i}");
        let _ = o.flush();
    }
    ExitCode::SUCCESS
}
