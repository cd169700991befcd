//! What the engine asks of its operating system for itself at start-up.

/// Raises this process's open-file soft limit (`RLIMIT_NOFILE`) to its hard limit: every
/// connection, WebSocket and sled file is one open file, and the soft limit (often 1,024)
/// would refuse sockets long before the machine runs out. Returns the soft limit in force
/// afterwards, or `None` where it cannot be read (not Linux, or the call failed).
pub fn raise_open_files() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    return Some(raised.rlim_cur);
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Given any soft limit, when raised, then it is the hard limit (a process may always
    /// raise its soft limit up to its hard one).
    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let now = raise_open_files().expect("readable on Linux");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(now, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
