//! Reading what a command's references name, all before it acts: from the server
//! (`TRESOR_ADDR`), the unlocked agent, or the vault opened here once (one password for all).

use crate::exit::CliError;
use crate::refs::Reference;
use crate::*;
use tresor::vault::ListEntry;
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
            Resolver::Local(session) => {
                session.call(tresor_wire::Get { path, version: reference.version })?
            }
        };
        reference.select(value)
    }

    /// Every reference's value, in order; the first that cannot be read stops them all.
    pub(crate) fn read_all<'r>(
        &mut self,
        references: impl IntoIterator<Item = &'r Reference>,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, CliError> {
        references.into_iter().map(|r| self.read(r)).collect()
    }

    /// The live secrets under `prefix`.
    pub(crate) fn list(&mut self, prefix: &str) -> Result<Vec<ListEntry>, CliError> {
        match self {
            Resolver::Remote(rt, remote) => rt.block_on(remote.list(prefix)),
            Resolver::Local(session) => session.call(tresor_wire::List { prefix: prefix.to_string() }),
        }
    }

    /// Ends the reads (see [`Session::finish`]).
    pub(crate) fn finish(self) {
        if let Resolver::Local(session) = self {
            session.finish();
        }
    }
}
