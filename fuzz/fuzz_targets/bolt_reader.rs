//! Any bytes as a bbolt file: the hardened reader's diagnosis must return a report, never
//! panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deadbolt::fuzzing::exercise_bolt(data));
