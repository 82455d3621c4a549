//! One module per subcommand (or per family of small ones).
pub mod bench;
pub mod bolt;
pub mod check;
pub mod compact_step;
pub mod copy;
pub mod dump;
pub mod info;
pub mod inspect;
pub mod pages;
pub mod stats;
