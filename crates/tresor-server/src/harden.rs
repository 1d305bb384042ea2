//! Process hardening for long-lived processes that hold keys.
//!
//! Core dumps off (`RLIMIT_CORE` = 0) and the process made non-dumpable (`PR_SET_DUMPABLE` = 0),
//! which also stops same-user `ptrace` attach and `/proc/<pid>/mem` reads. Key pages are
//! `mlock`ed by `tresor-crypto`; [`report`] says whether that worked.

/// What hardening achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardening {
    /// `RLIMIT_CORE` is 0.
    pub core_dumps_off: bool,
    /// `PR_SET_DUMPABLE` is 0.
    pub not_dumpable: bool,
}

/// Applies the hardening; failures are reported, not fatal.
pub fn apply() -> Hardening {
    let core_dumps_off = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit { current: Some(0), maximum: Some(0) },
    )
    .is_ok();
    let not_dumpable =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable).is_ok();
    Hardening { core_dumps_off, not_dumpable }
}

/// Warnings to print about hardening that did not take (empty when all is well).
pub fn report(h: &Hardening) -> Vec<String> {
    let mut out = Vec::new();
    if !h.core_dumps_off {
        out.push("could not disable core dumps".to_string());
    }
    if !h.not_dumpable {
        out.push("could not mark the process non-dumpable (ptrace stays possible)".to_string());
    }
    let failures = tresor_crypto::secret::mlock_failures();
    if failures > 0 {
        out.push(format!(
            "{failures} key pages could not be locked in memory (raise RLIMIT_MEMLOCK); keys may reach swap"
        ));
    }
    out
}
