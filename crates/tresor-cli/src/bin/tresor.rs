//! `tresor`: the front of the tresor vault's command line (see `tresor_cli::front`).
//!
//! Its `main` is the C one, not Rust's `fn main`: Rust's runtime start-up (finding the main
//! thread's stack guard by reading `/proc/self/maps`, an alternate signal stack) was a third of a
//! `tresor get`'s CPU time, and the front is started once per command. `tresor_cli::front::main`
//! and this `main` do the part of that start-up
//! the front needs.
#![no_main]
// The two unsafe items of the CLI: an exported `main`, and one signal disposition.
#![allow(unsafe_code)]

/// The process's entry point, called by the C runtime.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: sets SIGPIPE's disposition to "ignore" before any thread exists, as Rust's runtime
    // start-up does (a closed pipe is then a write error the CLI reports, not a silent death).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // The arguments are read with `std::env::args_os`, which glibc gives std on its own.
    tresor_cli::front::main().into()
}
