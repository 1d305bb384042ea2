//! The vault calls of a command that makes several — reading what its references name, listing,
//! copying versions — through one session: the server (`TRESOR_ADDR`), the unlocked agent, or
//! the vault opened here once (one password for all).

use crate::exit::CliError;
use crate::refs::Reference;
use crate::*;
use tresor::model::AuditOp;
use tresor::vault::{HistoryEntry, ListEntry};
use tresor_wire::SecretBuf;
use zeroize::Zeroizing;

/// Where the values come from.
pub(crate) enum Resolver<'a> {
    /// A tresor server.
    Remote(tokio::runtime::Runtime, &'a remote::Remote),
    /// The agent, or the vault opened here.
    Local(Session<'a>),
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(ctx: &'a mut Ctx) -> Result<Resolver<'a>, CliError> {
        if ctx.remote.is_none() {
            return Ok(Resolver::Local(Session::new(ctx)?));
        }
        match &ctx.remote {
            Some(remote) => Ok(Resolver::Remote(runtime()?, remote)),
            None => Err(CliError::other("no server to read from".into())),
        }
    }

    /// What `reference` names (each read audited, as `get` is).
    pub(crate) fn read(&mut self, reference: &Reference) -> Result<Zeroizing<Vec<u8>>, CliError> {
        let path = reference.path.clone();
        let value = match self {
            Resolver::Remote(rt, remote) => rt.block_on(remote.get(&path, reference.version))?,
            Resolver::Local(session) => session.read(path, reference.version)?,
        };
        reference.select(value)
    }

    /// The live secrets under `prefix`.
    pub(crate) fn list(&mut self, prefix: &str) -> Result<Vec<ListEntry>, CliError> {
        match self {
            Resolver::Remote(rt, remote) => rt.block_on(remote.list(prefix)),
            Resolver::Local(session) => {
                session.call(tresor_wire::List { prefix: prefix.to_string(), deleted: false })
            }
        }
    }

    /// A secret's versions.
    pub(crate) fn history(&mut self, path: &str) -> Result<Vec<HistoryEntry>, CliError> {
        match self {
            Resolver::Remote(rt, remote) => rt.block_on(remote.history(path)),
            Resolver::Local(session) => session.call(tresor_wire::History { path: path.to_string() }),
        }
    }

    /// A new version of `path`, only if it is at version `cas` (0: only if it does not exist).
    pub(crate) fn write(&mut self, path: &str, value: &[u8], cas: Option<u64>) -> Result<u64, CliError> {
        match self {
            Resolver::Remote(rt, remote) => rt.block_on(remote.set(path, value, cas)),
            Resolver::Local(session) => {
                let items = vec![(path.to_string(), SecretBuf::new(value.to_vec()))];
                let versions = session.call(tresor_wire::Set { op: AuditOp::Set, items, cas })?;
                Ok(versions.first().copied().unwrap_or(0))
            }
        }
    }

    /// Deletes the current version of `path` (its history is kept); the version deleted.
    pub(crate) fn delete(&mut self, path: &str) -> Result<u64, CliError> {
        match self {
            Resolver::Remote(rt, remote) => rt.block_on(remote.rm(path)),
            Resolver::Local(session) => session.call(tresor_wire::Delete { path: path.to_string() }),
        }
    }

    /// Makes a deleted version of `path` live again.
    pub(crate) fn undelete(&mut self, path: &str, version: u64) -> Result<(), CliError> {
        match self {
            Resolver::Remote(rt, remote) => rt.block_on(remote.mark_versions("undelete", path, &[version])),
            Resolver::Local(session) => session
                .call(tresor_wire::UndeleteVersions { path: path.to_string(), versions: vec![version] })
                .map(drop),
        }
    }

    /// Ends the session (see [`Session::finish`]).
    pub(crate) fn finish(self) {
        if let Resolver::Local(session) = self {
            session.finish();
        }
    }
}
