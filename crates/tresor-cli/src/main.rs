//! `tresor-cli`: the whole command line of the tresor vault (the `tresor` front hands it every
//! command line it does not serve itself).

fn main() -> std::process::ExitCode {
    tresor_cli::main()
}
