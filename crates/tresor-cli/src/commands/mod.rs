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
