//! Server CPU per request: the CPU time a server process (and the processes it started, such
//! as a baseline's redis-server) used during a run, from `/proc/<pid>/stat` (user + system
//! time, in clock ticks of 10 ms), read before the timed part and again once the server has
//! gone quiet after it (background work such as group commits counts), divided by the
//! requests answered. The server is given by `--server-pid`, or found by the port it listens
//! on (`/proc/net/tcp`), when it runs on this machine.

use std::collections::HashSet;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ: 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The CPU a process tree had used when the meter started.
pub struct Meter {
    pid: u32,
    start: u64,
}

impl Meter {
    pub fn start(pid: Option<u32>) -> Option<Meter> {
        let pid = pid?;
        Some(Meter {
            pid,
            start: tree_ticks(pid)?,
        })
    }

    /// Microseconds of server CPU per request, once the server used less than one tick in
    /// 250 ms (at most 3 s of waiting).
    pub async fn per_request(&self, requests: u64) -> Option<f64> {
        let mut last = tree_ticks(self.pid)?;
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = tree_ticks(self.pid)?;
            let quiet = now.saturating_sub(last) <= 1;
            last = now;
            if quiet {
                break;
            }
        }
        let used = last.saturating_sub(self.start) as f64 / TICKS_PER_SEC;
        (requests > 0).then(|| used * 1e6 / requests as f64)
    }
}

/// The server's process id: `explicit`, else the local process listening on `base`'s port.
pub fn server_pid(explicit: Option<u32>, base: &str) -> Option<u32> {
    explicit.or_else(|| listener_of(port_of(base)?))
}

fn port_of(base: &str) -> Option<u16> {
    let rest = base.split("://").nth(1)?;
    let host_port = rest.split('/').next()?;
    host_port.rsplit(':').next()?.parse().ok()
}

/// The process with a listening socket on `port`, by the socket's inode.
fn listener_of(port: u16) -> Option<u32> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // State 0A: LISTEN.
            if local_port == Some(port)
                && f.get(3) == Some(&"0A")
                && let Some(inode) = f.get(9)
            {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    for proc in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.contains(target.to_string_lossy().as_ref())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// User + system ticks of `pid` and every process below it.
fn tree_ticks(pid: u32) -> Option<u64> {
    let mut total = ticks(pid)?;
    for child in children(pid) {
        total += tree_ticks(child).unwrap_or(0);
    }
    Some(total)
}

fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is the 3rd field of the line,
    // utime the 14th and stime the 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_base_url_then_its_port_is_read() {
        assert_eq!(port_of("http://127.0.0.1:8081"), Some(8081));
        assert_eq!(port_of("http://127.0.0.1:8081/x"), Some(8081));
        assert_eq!(port_of("nope"), None);
    }

    #[test]
    fn this_process_uses_some_cpu_and_is_found_by_its_listening_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listener_of(port), Some(std::process::id()));
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0 && tree_ticks(std::process::id()).unwrap() > 0);
    }
}
