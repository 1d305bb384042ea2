//! One module per group of commands; `crate::main` parses the command line and hands each command
//! to its module.

pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod clip;
pub(crate) mod copy;
pub(crate) mod edit;
pub(crate) mod epoch;
pub(crate) mod generate;
pub(crate) mod inject;
pub(crate) mod keys;
pub(crate) mod koi;
pub(crate) mod login;
pub(crate) mod plain;
pub(crate) mod rekey;
pub(crate) mod relay;
pub(crate) mod run;
pub(crate) mod secrets;
pub(crate) mod server;
pub(crate) mod share;
pub(crate) mod shell;
pub(crate) mod trust;
pub(crate) mod unseal;
pub(crate) mod vault;

/// Logs of a long-lived process (agent, server, relay) to stderr: warnings and errors by default
/// (a detected rollback, a commit that landed but could not be applied), more with `TRESOR_LOG`
/// (`info`, `debug`, or `tracing` directives). No log line carries a secret or a token.
pub(crate) fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRESOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
