//! Shared test helpers: a seeded RNG and seed handling.
#![allow(dead_code)]
pub mod alloc;
pub mod format;
pub mod logs;
pub mod walk;

/// SplitMix64: small, fast, deterministic.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Run `f` for each seed (or only `$DEADBOLT_SEED` when set), printing the seed and a replay
/// command when one fails.
pub fn for_seeds(
    test: &str,
    seeds: std::ops::Range<u64>,
    f: impl Fn(u64) + std::panic::RefUnwindSafe,
) {
    let seeds: Vec<u64> = match std::env::var("DEADBOLT_SEED") {
        Ok(s) => vec![s.parse().expect("DEADBOLT_SEED must be a u64")],
        Err(_) => seeds.collect(),
    };
    for seed in seeds {
        if let Err(e) = std::panic::catch_unwind(|| f(seed)) {
            eprintln!(
                "seed {seed} failed; replay with: DEADBOLT_SEED={seed} cargo test --test {test}"
            );
            std::panic::resume_unwind(e);
        }
    }
}
