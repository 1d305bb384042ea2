//! Link options of the `tresor` binary: start-up is part of every command's cost.
//!
//! A PIE Rust binary carries tens of thousands of relative relocations (vtables, string tables),
//! 24 bytes each in `.rela.dyn`, which the dynamic loader reads and applies at every start. Packed
//! relative relocations (`DT_RELR`: glibc ≥ 2.36, GNU ld ≥ 2.38 or lld) shrink that table about
//! fifty-fold, so fewer pages are read at start-up; the binary stays position-independent
//! (ASLR unchanged). `TRESOR_NO_RELR=1` builds without it, for older C libraries.

fn main() {
    println!("cargo:rerun-if-env-changed=TRESOR_NO_RELR");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("-linux-gnu") && std::env::var_os("TRESOR_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
