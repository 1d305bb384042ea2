//! Exit codes and error rendering.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other error (store I/O, local state), or a write whose outcome is unknown (`Error::Indeterminate`) |
//! | 2 | usage error (also: `recovery-phrase` without `--file` when stderr is not a terminal) |
//! | 3 | authentication failed (wrong password, tampered key file, refused KDF parameters) |
//! | 4 | not found (no such secret or version, or deleted; no sync group or KOI peer shares the folder) |
//! | 5 | integrity error, rollback or fork detected (also by `sync`, of the relay or a member; a KOI message refused) |
//! | 6 | write conflict (also: another `sync` of the group at the same time) |
//! | 7 | invalid input (path, value size, password rules, import file) |
//! | 8 | no vault at the location, or a vault already there |
//! | 9 | the audit record could not be written: operation refused |
//! | 10 | the store lacks a required capability (create-if-absent) |
//! | 11 | a destruction (an epoch's, or versions' with `destroy`) is incomplete: the store still holds some of its objects or old versions of them |
//! | 12 | `verify`: the signature does not match the message and public key |
//! | 13 | another vault than the one this machine pinned is at the location (or than `TRESOR_VAULT_FINGERPRINT`) |

use std::borrow::Cow;
use tresor::{Category, Error};

/// An error on its way out of the CLI (its message never holds a secret).
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    message: String,
    hint: Option<Cow<'static, str>>,
}

impl CliError {
    pub fn from_category(category: Category, message: String) -> CliError {
        let (code, hint) = match category {
            Category::Auth => (3, None),
            Category::NotFound => (4, Some("`tresor list` shows the secrets there are")),
            Category::Integrity => (
                5,
                Some(
                    "the store was changed outside tresor: restore it from a backup you trust, then `tresor audit verify`",
                ),
            ),
            Category::Conflict => (6, Some("another writer got there first: run the command again")),
            Category::Invalid => (7, None),
            Category::Location => (8, None),
            Category::Audit => {
                (9, Some("nothing was returned or changed; check that the vault location is writable"))
            }
            Category::Unsupported => (10, None),
            Category::Identity => (
                13,
                Some(
                    "compare fingerprints (`tresor status` on a machine you trust) before re-trusting the location",
                ),
            ),
            _ => (1, None),
        };
        CliError { code, message, hint: hint.map(Cow::Borrowed) }
    }

    /// A core error (from this process or, typed, from the agent): the exit code of its
    /// category, and the advice for its kind, which the core's messages never carry.
    pub fn from_core(e: &Error) -> CliError {
        let mut out = CliError::from_category(e.category(), e.to_string());
        if let Some(hint) = hint(e) {
            out.hint = Some(hint);
        }
        out
    }

    pub fn input(message: String) -> CliError {
        CliError { code: 7, message, hint: None }
    }

    /// Exit 2: the command cannot run as asked (like clap's own usage errors).
    pub fn usage(message: String) -> CliError {
        CliError { code: 2, message, hint: None }
    }

    pub fn incomplete(message: String) -> CliError {
        CliError {
            code: 11,
            message,
            hint: Some(Cow::Borrowed(
                "remove the remaining versions on the bucket (or its Object Lock), then run the command again",
            )),
        }
    }

    pub fn bad_signature() -> CliError {
        CliError {
            code: 12,
            message: "signature invalid: it does not match this message and public key".into(),
            hint: None,
        }
    }

    pub fn other(message: String) -> CliError {
        CliError { code: 1, message, hint: None }
    }

    /// An error with an exit code of its own (`run`: 126 cannot run, 127 not found).
    pub fn with_code(code: u8, message: String) -> CliError {
        CliError { code, message, hint: None }
    }

    /// Another program's exit code, passed on with nothing printed (`run --mask`).
    pub fn passthrough(code: u8) -> CliError {
        CliError { code, message: String::new(), hint: None }
    }

    /// The same error with other advice.
    pub fn with_hint(mut self, hint: String) -> CliError {
        self.hint = Some(Cow::Owned(hint));
        self
    }

    /// The same error, saying what it was about first (`DB_PASSWORD: no secret at db/pw`).
    pub fn context(mut self, about: &str) -> CliError {
        if !self.message.is_empty() {
            self.message = format!("{about}: {}", self.message);
        }
        self
    }

    /// The message, without the hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn print(&self) {
        if self.message.is_empty() {
            return;
        }
        errln!("tresor: error: {}", self.message);
        if let Some(hint) = &self.hint {
            errln!("tresor: hint: {hint}");
        }
    }
}

/// What to do about `e`, when its kind calls for more than its category's advice.
fn hint(e: &Error) -> Option<Cow<'static, str>> {
    // A write of unknown outcome keeps its own advice (`history` tells whether it landed).
    if e.full_disk() && !matches!(e, Error::Indeterminate(_)) {
        return Some(Cow::Borrowed(match e {
            Error::Audit(_) => {
                "nothing was returned or changed: the filesystem holding the vault is full; free some space there, \
                 then run the command again"
            }
            _ => {
                "the filesystem holding the vault is full: free some space there, then run the command again"
            }
        }));
    }
    Some(Cow::Borrowed(match e {
        Error::NoVault { .. } => "create one with `tresor init`, or name another with --vault",
        Error::NotAVault { .. } => {
            "name the vault with --vault (or TRESOR_VAULT); `tresor init` makes one in a new or empty directory"
        }
        Error::InterruptedInit { .. } => {
            "if it is an interrupted init, remove the location, then run `tresor init` again"
        }
        Error::VaultChanged { .. } => {
            "compare fingerprints (`tresor status` on a machine you trust); if the location really holds another \
             vault now, re-trust it with `tresor trust forget` (or `tresor trust FINGERPRINT`)"
        }
        // A backup file is not the store: the store is not to blame (issue 15, bug 16).
        Error::Integrity { kind: tresor::ObjectKind::Archive, .. } => {
            "the backup file is damaged or incomplete (cut short in a copy?); nothing was restored: use another copy"
        }
        Error::Foreign { .. } => "`tresor doctor` lists such entries: remove them by hand",
        Error::Rekeyed { .. } => {
            "compare its new fingerprint (`tresor status` where it was re-keyed) and pin it with \
             `tresor trust FINGERPRINT`"
        }
        Error::Fenced { .. } => {
            "if the re-key was interrupted, run `tresor rekey` again (or `tresor rekey --abort`)"
        }
        Error::Superseded { .. } => {
            "lock and unlock again with the vault's password (`tresor lock`, then `tresor unlock`)"
        }
        Error::RekeyRunning { wait_s, .. } => {
            return Some(Cow::Owned(format!(
                "if it was killed, run `tresor rekey` again in {wait_s}s, or with --force"
            )));
        }
        Error::Deleted { path, .. } => {
            return Some(Cow::Owned(format!(
                "`tresor history {path}` lists older versions; `tresor undelete {path}` brings it back"
            )));
        }
        Error::NoSuchVersion { path, .. } => {
            return Some(Cow::Owned(format!("`tresor history {path}` lists its versions")));
        }
        Error::Destroyed { path, .. } => {
            return Some(Cow::Owned(format!("`tresor history {path}` lists the versions that remain")));
        }
        Error::Indeterminate(_) => {
            "the store failed after the write was sent: `tresor history PATH` shows whether it landed"
        }
        _ => return None,
    }))
}
