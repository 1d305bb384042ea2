//! `tresor`: the front of the tresor vault's command line (see `tresor_cli::front`).

fn main() -> std::process::ExitCode {
    tresor_cli::front::main()
}
