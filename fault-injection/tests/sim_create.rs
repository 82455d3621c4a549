//! The simulated disk's `create` (issue 11, point 5): one op, a crash point like every other,
//! after which a crash image is either no file / an empty one (before the op) or the whole
//! image (after it), never a part of it; its failures; and the log replay reproducing it.

use std::collections::HashSet;

use deadbolt::Storage;
use fault_injection::crash::{Mode, Window};
use fault_injection::disk::{CrashState, FaultPlan, LogOp, Media, OpResult, SimDisk};
use fault_injection::replay::Replayer;
use fault_injection::rng::Rng;

fn image() -> Vec<u8> {
    (0..3000u32).map(|i| (i % 251) as u8 + 1).collect()
}

/// Every distinct crash image of `st` over many draws of every mode (plus F6's "no file").
fn images(st: &CrashState) -> HashSet<Vec<u8>> {
    let media = Media::default();
    let w = Window::new(st, media);
    let mut rng = Rng::new(7);
    let mut out = HashSet::new();
    out.insert(w.process());
    for mode in Mode::ALL {
        for _ in 0..200 {
            out.insert(w.random(mode, &mut rng));
        }
    }
    out
}

fn only(imgs: &[&[u8]]) -> HashSet<Vec<u8>> {
    imgs.iter().map(|i| i.to_vec()).collect()
}

#[test]
fn partial_image_after_a_crash_around_create_is_never_seen() {
    let disk = SimDisk::new(Vec::new(), Media::default(), FaultPlan::default(), 1);
    disk.record_log(true);
    let before = disk.state_now();
    disk.create(&image()).unwrap();
    assert_eq!(disk.ops(), 1, "one op, one crash point");
    let after = disk.state_now();
    assert_eq!(
        images(&before),
        only(&[&[]]),
        "before: no file or an empty one"
    );
    assert_eq!(images(&after), only(&[&image()]), "after: the whole image");
    assert!(after.dir_synced && after.pending.is_empty());
    // Later writes build on the created image as their durable base.
    disk.write_at(10, b"xyz").unwrap();
    let later = disk.state_now();
    for img in images(&later) {
        assert_eq!(img.len(), image().len());
        assert_eq!(img[..10], image()[..10]);
    }
}

#[test]
fn create_at_the_crash_point_takes_effect_and_nothing_after_it_does() {
    for k in [0u64, 1] {
        let plan = FaultPlan {
            crash_after: Some(k),
            ..FaultPlan::default()
        };
        let disk = SimDisk::new(Vec::new(), Media::default(), plan, 1);
        let r = disk.create(&image());
        assert_eq!(r.is_ok(), k == 1, "crash after op {k}");
        assert!(disk.write_at(0, b"x").is_err(), "the machine is down");
        let st = disk.crashed().expect("crashed");
        let want: &[u8] = if k == 0 { &[] } else { &image() };
        assert_eq!(images(&st), only(&[want]), "crash after op {k}");
    }
}

#[test]
fn create_over_a_non_empty_disk_is_refused_without_an_op() {
    let disk = SimDisk::new(
        b"foreign".to_vec(),
        Media::default(),
        FaultPlan::default(),
        1,
    );
    let e = disk.create(&image()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(disk.ops(), 0);
    assert_eq!(disk.creates(), 0);
    assert_eq!(disk.current(), b"foreign");
    assert_eq!(disk.durable(), b"foreign");
}

#[test]
fn failed_create_is_reported_and_leaves_no_file_or_the_whole_image() {
    // Before the rename: nothing changes.
    for plan in [
        FaultPlan {
            fail_create: Some((1, false)),
            ..FaultPlan::default()
        },
        FaultPlan {
            capacity: Some(2048),
            ..FaultPlan::default()
        },
    ] {
        let disk = SimDisk::new(Vec::new(), Media::default(), plan.clone(), 1);
        assert!(disk.create(&image()).is_err(), "{plan:?}");
        assert_eq!(disk.injected_errors(), 1);
        assert_eq!(disk.current(), Vec::<u8>::new(), "{plan:?}");
        assert_eq!(images(&disk.state_now()), only(&[&[]]), "{plan:?}");
    }
    // In the directory sync after the rename: the image is in place, its entry may be lost.
    let plan = FaultPlan {
        fail_create: Some((1, true)),
        ..FaultPlan::default()
    };
    let disk = SimDisk::new(Vec::new(), Media::default(), plan, 1);
    assert!(disk.create(&image()).is_err());
    assert_eq!(disk.current(), image());
    assert_eq!(images(&disk.state_now()), only(&[&[], &image()]));
}

#[test]
fn replayed_log_differs_from_the_live_disk_around_create_never() {
    for plan in [
        FaultPlan::default(),
        FaultPlan {
            fail_create: Some((1, true)),
            ..FaultPlan::default()
        },
        FaultPlan {
            fail_create: Some((1, false)),
            ..FaultPlan::default()
        },
    ] {
        let disk = SimDisk::new(Vec::new(), Media::default(), plan.clone(), 1);
        disk.record_log(true);
        let mut states = vec![disk.state_now()];
        disk.set_len(0).unwrap();
        states.push(disk.state_now());
        let _ = disk.create(&image());
        states.push(disk.state_now());
        if disk.current().is_empty() {
            // The failed create left the file empty: create again, as the next open would.
            disk.create(&image()).unwrap();
            states.push(disk.state_now());
        }
        disk.write_at(100, b"after").unwrap();
        states.push(disk.state_now());
        disk.sync_data().unwrap();
        states.push(disk.state_now());
        let log = disk.take_log();
        assert!(log
            .iter()
            .any(|(op, _)| matches!(op, LogOp::Create { placed: true, .. })));
        let mut rp = Replayer::new(Vec::new());
        for (i, op) in log.iter().enumerate() {
            rp.step(op);
            let (want, got) = (&states[i + 1], &rp.st);
            assert_eq!(got.durable, want.durable, "{plan:?} op {i}: {op:?}");
            assert_eq!(got.current, want.current, "{plan:?} op {i}");
            assert_eq!(got.dir_synced, want.dir_synced, "{plan:?} op {i}");
            assert_eq!(got.pending.len(), want.pending.len(), "{plan:?} op {i}");
        }
        let failed = log.iter().filter(|(_, r)| *r == OpResult::Failed).count();
        assert_eq!(failed, usize::from(plan.fail_create.is_some()), "{plan:?}");
    }
}
