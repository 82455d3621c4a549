//! Replaying a recorded operation log: the crash state after every op of a clean run, rebuilt
//! without running the engine again. The exhaustive tier crashes a recorded run at each op this
//! way, and the oracle does the same inside the commit after a fallen-back recovery, so this
//! sits below both.

use crate::disk::{LogOp, OpResult};
use crate::image::{apply_create, apply_pending, apply_write, CrashState, Pending};

/// Steps through an op log, producing the crash state after each op.
pub struct Replayer {
    pub st: CrashState,
}

impl Replayer {
    pub fn new(image: Vec<u8>) -> Replayer {
        Replayer {
            st: CrashState {
                dir_synced: !image.is_empty(),
                durable: image.clone(),
                current: image,
                pending: Vec::new(),
                ops: 0,
            },
        }
    }

    pub fn step(&mut self, op: &(LogOp, OpResult)) {
        let st = &mut self.st;
        st.ops += 1;
        match &op.0 {
            LogOp::Write { off, data, fate } => {
                if !data.is_empty() {
                    apply_write(&mut st.current, *off, data);
                    st.pending.push(Pending::Write {
                        off: *off,
                        data: data.clone(),
                        fate: *fate,
                    });
                }
            }
            LogOp::SetLen(n) => {
                if op.1 == OpResult::Ok {
                    st.current.resize(*n as usize, 0);
                    st.pending.push(Pending::SetLen(*n));
                }
            }
            LogOp::Sync => {
                if op.1 == OpResult::Ok {
                    let p = std::mem::take(&mut st.pending);
                    apply_pending(&mut st.durable, &p);
                    st.durable.resize(st.current.len(), 0);
                }
            }
            LogOp::SyncDir => st.dir_synced = true,
            LogOp::Create { data, placed } => {
                if *placed {
                    apply_create(&mut st.durable, &mut st.current, &mut st.pending, data);
                    // As in `SimDisk::create`: the entry is durable only if the op succeeded.
                    st.dir_synced = op.1 == OpResult::Ok;
                }
            }
        }
    }
}
