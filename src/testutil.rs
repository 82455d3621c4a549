//! What the unit tests of several layers share: a deterministic generator, so that a
//! randomized test's failure names the seed that replays it.

#![cfg(test)]

/// splitmix64.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The seeds a randomized test runs: `DEADBOLT_SEED=n` replays one, else `1..=count`.
pub(crate) fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("DEADBOLT_SEED").map(|s| s.parse::<u64>()) {
        Ok(Ok(seed)) => vec![seed],
        Ok(Err(e)) => panic!("DEADBOLT_SEED is not a number: {e}"),
        Err(_) => (1..=count).collect(),
    }
}
