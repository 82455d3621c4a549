//! Any bytes as a database file: open, check, iterate every bucket both ways, seek, write,
//! commit, reopen, salvage. libFuzzer reports panics, hangs (-timeout) and allocations over
//! -rss_limit_mb / -malloc_limit_mb.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deadbolt::fuzzing::exercise_image(data));
