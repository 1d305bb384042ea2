//! Page-sized, page-aligned, `mlock`ed storage for key bytes.
//!
//! Each key gets a page of its own, so unlocking it on drop never unlocks another key's page.
//! A few dozen keys cost a few dozen pages: well under the default `RLIMIT_MEMLOCK`.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use zeroize::Zeroize;

const PAGE: usize = 4096;

#[repr(C, align(4096))]
struct Page([u8; PAGE]);

/// Pages that could not be locked (RLIMIT_MEMLOCK, platform): reported by [`mlock_failures`].
static FAILURES: AtomicUsize = AtomicUsize::new(0);

/// How many key pages could not be `mlock`ed in this process so far.
pub fn mlock_failures() -> usize {
    FAILURES.load(Ordering::Relaxed)
}

/// 32 bytes of key material in a locked page of their own, wiped on drop.
pub(crate) struct LockedKey {
    page: Box<Page>,
    locked: bool,
}

impl LockedKey {
    /// A zeroed, locked page; the caller writes the key through [`LockedKey::bytes_mut`].
    pub(crate) fn zeroed() -> Self {
        let mut page = Box::new(Page([0u8; PAGE]));
        let ptr = page.0.as_mut_ptr().cast::<core::ffi::c_void>();
        // SAFETY: `ptr` points to a live, page-aligned allocation of exactly PAGE bytes owned by
        // `page`; mlock only changes the residency of those pages and never touches their contents.
        let locked = unsafe { rustix::mm::mlock(ptr, PAGE) }.is_ok();
        if !locked {
            FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        Self { page, locked }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        self.page.0[..32].try_into().unwrap_or_else(|_| unreachable!("page holds 32 bytes"))
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; 32] {
        (&mut self.page.0[..32]).try_into().unwrap_or_else(|_| unreachable!("page holds 32 bytes"))
    }
}

impl Drop for LockedKey {
    fn drop(&mut self) {
        self.page.0.zeroize();
        if self.locked {
            let ptr = self.page.0.as_mut_ptr().cast::<core::ffi::c_void>();
            // SAFETY: the same live allocation that was locked in `zeroed`; it is freed only after
            // this call returns, so no other allocation can share the page yet.
            let _ = unsafe { rustix::mm::munlock(ptr, PAGE) };
        }
    }
}
