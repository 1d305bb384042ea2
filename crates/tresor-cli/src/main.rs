//! `tresor-cli`: the whole command line of the tresor vault (the `tresor` front hands it every
//! command line it does not serve itself).

/// mimalloc: the long-lived processes this binary runs (server, agent, relay) allocate on every
/// request, and glibc's malloc was a tenth of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tresor_cli::main()
}
