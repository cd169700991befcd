//! Gives freed memory back to the operating system after a wave of passivations. The
//! allocator (jemalloc, see `main.rs`) keeps freed pages in its arenas for reuse and returns
//! them only as later allocations pass by, so a node that passivated a million entities and
//! then went quiet would go on holding the RSS it had with all of them active; every 10 s, if
//! the active entities fell by [`TRIM_AFTER`] since the last look, every arena's free pages
//! are purged. (A program that links the library without making jemalloc its allocator, such
//! as the tests, gets nothing from it.)

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
                let _ = tokio::task::spawn_blocking(|| {
                    if let Err(error) = purge() {
                        tracing::warn!(error, "jemalloc refused to purge its arenas");
                    }
                })
                .await;
                high = now;
            } else {
                high = high.max(now);
            }
        }
    });
}

/// jemalloc's `arena.<i>.purge` for every arena (`MALLCTL_ARENAS_ALL`, 4096); the error is
/// `mallctl`'s errno.
fn purge() -> Result<(), i32> {
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated name and no old or new value, as `arena.<i>.purge` takes.
    let failed = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    match failed {
        0 => Ok(()),
        errno => Err(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jemalloc_takes_the_purge_of_every_arena() {
        // Given jemalloc linked in (unit tests allocate through the system allocator: only
        // the binary makes jemalloc the global one, so this checks the command, not the RSS)
        // When every arena is purged, Then jemalloc knows the command and carries it out
        assert_eq!(purge(), Ok(()));
    }
}
