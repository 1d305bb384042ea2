//! tresor's agent and server: one unlock serves many commands, and many clients.
//!
//! The agent is a per-user process listening on a Unix socket (mode 0600, in a 0700 directory;
//! the peer's uid is checked on every connection). It holds the unlocked [`tresor::Vault`] — keys
//! in locked pages — and serves the CLI's calls (the protocol is `tresor-wire`), each connection
//! in a task of its own on the shared handle; [`serve`] says what each call does. It disables core
//! dumps and ptrace ([`harden`]), locks after an idle timeout, and wipes every key on `lock`.
//! The [`http`] server speaks HashiCorp Vault's API to programs that hold a token (ARCHITECTURE.md,
//! "The server"). The [`relay`] forwards sync groups' cells and knows nothing else; the agent and
//! the server [`sync`] the vault's own groups in the background.
#![deny(missing_docs)]

pub mod agent;
pub mod harden;
pub mod http;
pub mod relay;
pub mod serve;
pub mod sync;

pub use agent::{AgentConfig, bind};
pub use serve::Serve;
