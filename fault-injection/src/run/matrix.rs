//! The configurations of the CI exhaustive tier (tier 1 in `cargo test`).

use super::exhaustive::ExhCfg;
use crate::image::Media;

/// The bounded exhaustive tier's matrix: every fixed workload at page sizes 1K-16K with
/// 512- and 4096-byte sectors (PSOW, atomic sectors), plus sub-sector tearing (atomicity off),
/// PSOW off (Detect mode) and `no_sync` variants; `small-buckets` at 1K and 4K pages only, with
/// the tearing and PSOW-off variants at 1K; and four with a long-lived reader (I11). For 16
/// images per configuration whose recovery fell back past a newer commit, the next commit is
/// crashed after every op.
pub fn ci_matrix() -> Vec<ExhCfg> {
    ci_matrix_with(16)
}

/// [`ci_matrix`] with `full_probes` (see [`ExhCfg::full_probes`]) per configuration.
pub fn ci_matrix_with(full_probes: usize) -> Vec<ExhCfg> {
    let media = |sector, psow, sector_atomic| Media {
        sector,
        psow,
        sector_atomic,
    };
    let mut v = Vec::new();
    let workloads = crate::workload::fixed(4096);
    let mut seed = 0x00C1_0000u64;
    for (workload, wl) in workloads.iter().enumerate() {
        // The small-bucket workload's dozen bucket pages make each of its images dearer than
        // the others' (1 ms each at 16K pages, 0.25 ms at 4K): its page-relative limit is
        // covered at 1K and 4K, the sector variants (a property of the disk model more than
        // of the bucket layout) at 1K.
        let small = wl.name == "small-buckets";
        // Its 80-page file makes every image of it dear too; its point (the cut after a sync
        // under no_sync) is page-size independent.
        let shrink = wl.name == "shrink-after-sync";
        let pages: &[usize] = if small || shrink {
            &[1024, 4096]
        } else {
            &[1024, 2048, 4096, 8192, 16384]
        };
        for &page_size in pages {
            // (media, no_sync): both sector sizes at every page size; the atomicity-off,
            // PSOW-off and no_sync variants at 1K and 4K pages only (72 configurations in all).
            let mut medias = vec![
                (media(512, true, true), false),
                (media(4096, true, true), false),
            ];
            if page_size == 4096 || page_size == 1024 {
                if !(small && page_size == 4096) {
                    medias.push((media(4096, true, false), false));
                    medias.push((media(4096, false, true), false));
                }
                medias.push((media(512, true, true), true));
            }
            for (media, no_sync) in medias {
                seed += 1;
                v.push(ExhCfg {
                    workload,
                    page_size,
                    media,
                    no_sync,
                    subset_limit: 10,
                    reorder_samples: 400,
                    torn_samples: 240,
                    probe_every: 1,
                    full_probes,
                    readers: false,
                    seed,
                });
            }
        }
    }
    // A reader of the first commit held across the rest (I11), at 4K pages on 512-byte
    // sectors, for the four workloads that free pages (not small-buckets, whose images cost
    // most).
    for workload in 0..4 {
        seed += 1;
        v.push(ExhCfg {
            workload,
            page_size: 4096,
            media: media(512, true, true),
            no_sync: false,
            subset_limit: 10,
            reorder_samples: 400,
            torn_samples: 240,
            probe_every: 1,
            full_probes,
            readers: true,
            seed,
        });
    }
    v
}
