//! The lines a child process prints for the parent, `TAG name value`: [`RESULT`] lines from an
//! engine's run (also printed by `bench/go/bboltbench.go`) and [`DUEL`] lines from the
//! interleaved commit run.

/// Tag of one figure of an engine's run: `RESULT metric value`.
pub const RESULT: &str = "RESULT";
/// Tag of one engine's rate in the interleaved commit run: `DUEL engine commits-per-second`.
pub const DUEL: &str = "DUEL";

/// Print one `tag name value` line on stdout.
pub fn print(tag: &str, name: &str, v: f64) {
    println!("{tag} {name} {v}");
}

/// The `(name, value)` of every well-formed `tag name value` line of `out`; other lines (and
/// values that are not numbers) are skipped.
pub fn parse<'a>(out: &'a str, tag: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    out.lines().filter_map(move |line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[..] {
            [t, name, v] if t == tag => v.parse().ok().map(|v| (name, v)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_back_what_print_writes_and_skips_the_rest() {
        let out = "RESULT bulk_load_ms 12.5\nnoise\nRESULT threads 2\nDUEL deadbolt 4000\n\
                   RESULT bad x\nRESULT too many fields\n";
        let got: Vec<_> = parse(out, RESULT).collect();
        assert_eq!(got, [("bulk_load_ms", 12.5), ("threads", 2.0)]);
        let got: Vec<_> = parse(out, DUEL).collect();
        assert_eq!(got, [("deadbolt", 4000.0)]);
    }
}
