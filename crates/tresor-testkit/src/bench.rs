//! What the benchmarks share: how busy a run kept the machine's cores.

/// CPU time this process has used so far (user and system, all threads), in seconds, from
/// `/proc/self/stat` (clock ticks of 10 ms; 0 where that file does not exist). The difference
/// over a run, divided by its wall time, is how many cores it kept busy: near the core count, the
/// cores bound it; well below, something else does (the disk, waiting, the code's concurrency).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces, inside parentheses): utime and
    // stime are the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<f64>().ok()).sum::<f64>() / 100.0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// Spinning makes CPU time grow, however contended the machine (it spins until it has had
    /// its share, for at most ten seconds).
    #[test]
    fn cpu_time_grows_with_work() {
        let before = super::cpu_seconds();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while super::cpu_seconds() - before < 0.05 && start.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        }
        assert!(super::cpu_seconds() - before >= 0.05, "{x}");
    }
}
