//! Gives freed memory back to the operating system after a wave of passivations. glibc's
//! allocator keeps what a process freed in its arenas for reuse, so a node that passivated a
//! million entities would go on holding the RSS it had with all of them active; every 10 s, if
//! the active entities fell by [`TRIM_AFTER`] since the last look, `malloc_trim` returns the
//! free pages. (Other allocators and platforms: nothing to do.)

use crate::actors::supervisor::active_entities;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A fall in active entities that is worth a trim.
pub const TRIM_AFTER: u64 = 10_000;

/// Watches the active entities until `shutdown`, trimming after each wave of passivations.
pub fn spawn_trimmer(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut high = active_entities();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
            let now = active_entities();
            if high.saturating_sub(now) >= TRIM_AFTER {
                let _ = tokio::task::spawn_blocking(trim).await;
                high = now;
            } else {
                high = high.max(now);
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
