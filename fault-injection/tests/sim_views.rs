//! The simulated disk's views behave like a MAP_SHARED mapping (an old view sees later writes,
//! a shrink under a live view poisons what it still reaches) and its read faults do what the
//! fault plan says (EIO, a zeroed sector, a short view).

use deadbolt::Storage;
use fault_injection::disk::{FaultPlan, Media, SimDisk, POISON};

fn disk(image: &[u8], plan: FaultPlan) -> SimDisk {
    SimDisk::new(image.to_vec(), Media::default(), plan, 1)
}

#[test]
fn an_old_view_sees_later_writes_to_the_same_bytes() {
    let d = disk(&[1u8; 1024], FaultPlan::default());
    let v = d.view().unwrap();
    d.write_at(100, b"new bytes").unwrap();
    assert_eq!(&v.bytes()[100..109], b"new bytes");
    assert_eq!(v.bytes().len(), 1024, "a view keeps its length");
    d.write_at(2000, b"x").unwrap();
    assert_eq!(
        v.bytes().len(),
        1024,
        "growth does not lengthen an old view"
    );
    assert_eq!(d.view().unwrap().bytes().len(), 2001);
    assert!(d.view().unwrap().bytes()[1024..2000]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn a_shrink_under_a_live_view_poisons_the_cut_off_bytes_and_is_counted() {
    let d = disk(&[7u8; 4096], FaultPlan::default());
    let v = d.view().unwrap();
    d.set_len(1000).unwrap();
    assert_eq!(d.shrinks_under_views(), 1);
    assert_eq!(&v.bytes()[..1000], &[7u8; 1000][..]);
    assert_eq!(&v.bytes()[1000..1008], POISON);
    assert_eq!(&v.bytes()[4088..4096], POISON);
    // Growth again reads as zeros, through the old view too (as through a real mapping).
    d.set_len(2000).unwrap();
    assert!(v.bytes()[1000..2000].iter().all(|&b| b == 0));
    assert_eq!(d.current().len(), 2000);
    assert!(d.current()[1000..].iter().all(|&b| b == 0));
}

#[test]
fn a_shrink_with_no_live_view_past_the_end_is_not_counted() {
    let d = disk(&[7u8; 4096], FaultPlan::default());
    drop(d.view().unwrap());
    d.set_len(1000).unwrap();
    assert_eq!(d.shrinks_under_views(), 0);
    d.set_len(4096).unwrap();
    assert!(
        d.current()[1000..].iter().all(|&b| b == 0),
        "stale bytes never come back"
    );
}

#[test]
fn the_crash_image_is_unchanged_by_views() {
    let d = disk(&[3u8; 2048], FaultPlan::default());
    let _v = d.view().unwrap();
    d.write_at(0, &[9u8; 512]).unwrap();
    d.set_len(1024).unwrap();
    let st = d.state_now();
    assert_eq!(st.durable, vec![3u8; 2048]);
    assert_eq!(st.current.len(), 1024);
    assert_eq!(&st.current[..512], &[9u8; 512][..]);
    assert_eq!(&st.current[512..], &[3u8; 512][..]);
}

#[test]
fn the_nth_view_fails_reads_a_zeroed_sector_or_is_short_as_planned() {
    let img: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8 + 1).collect();
    let d = disk(
        &img,
        FaultPlan {
            fail_view: Some((1, false)),
            ..FaultPlan::default()
        },
    );
    assert!(d.view().is_err());
    assert_eq!(d.view().unwrap().bytes(), &img[..], "transient");
    assert_eq!(d.injected_errors(), 1);

    let d = disk(
        &img,
        FaultPlan {
            zero_view: Some((2, 3)),
            ..FaultPlan::default()
        },
    );
    assert_eq!(d.view().unwrap().bytes(), &img[..]);
    let z = d.view().unwrap();
    assert_eq!(z.bytes().len(), 4096, "the length is honest");
    assert!(z.bytes()[1536..2048].iter().all(|&b| b == 0));
    assert_eq!(&z.bytes()[..1536], &img[..1536]);
    assert_eq!(&z.bytes()[2048..], &img[2048..]);
    assert_eq!(d.silent_read_faults(), 1);
    assert_eq!(d.view().unwrap().bytes(), &img[..], "transient");

    let d = disk(
        &img,
        FaultPlan {
            short_view: Some((1, 1024)),
            ..FaultPlan::default()
        },
    );
    assert_eq!(d.view().unwrap().bytes(), &img[..1024]);
    assert_eq!(d.len().unwrap(), 4096);
    assert_eq!(d.view().unwrap().bytes(), &img[..]);
    assert_eq!(d.views(), 2);
}
