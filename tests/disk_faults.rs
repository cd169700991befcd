//! A node's disk failing under it, for real: a data dir on a small tmpfs that fills up, and
//! one on an ext4 image frozen with `fsfreeze` (what a storage volume that stops answering
//! looks like). Each needs root to mount; without it the test says it skipped.
//!
//! In both the node must say it is not ready (`/readyz` 503), so an orchestrator or a load
//! balancer takes it out, instead of answering every write with an error (or never) while
//! claiming to be ready.

mod common;

use common::{Server, start, wait_ready};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "disk-faults-operator";

/// A mount of the test's own, unmounted (and thawed) when dropped, whatever happened.
struct Mount {
    at: PathBuf,
    image: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Mount {
    /// A tmpfs of `size` (`mount -t tmpfs -o size=`); `None` when mounting is not allowed.
    fn tmpfs(size: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("mnt");
        std::fs::create_dir(&at).unwrap();
        let size = format!("size={size}");
        let mounted = run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", path(&at)]);
        mounted.then_some(Mount {
            at,
            image: None,
            _dir: dir,
        })
    }

    /// An ext4 filesystem in a 64 MiB image file, loop-mounted; `None` when not allowed.
    fn ext4() -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap();
        let (image, at) = (dir.path().join("fs.img"), dir.path().join("mnt"));
        std::fs::create_dir(&at).unwrap();
        let made = run("truncate", &["-s", "64M", path(&image)])
            && run("mkfs.ext4", &["-q", path(&image)])
            && run("mount", &["-o", "loop", path(&image), path(&at)]);
        made.then_some(Mount {
            at,
            image: Some(image),
            _dir: dir,
        })
    }

    fn freeze(&self, frozen: bool) {
        let how = if frozen { "-f" } else { "-u" };
        assert!(run("fsfreeze", &[how, path(&self.at)]), "fsfreeze {how}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.image.is_some() {
            let _ = run("fsfreeze", &["-u", path(&self.at)]);
        }
        let _ = run("umount", &["-l", path(&self.at)]);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Runs `program args`, quietly; whether it succeeded.
fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A node serving the data dir `dir` (dev mode, a known operator token).
async fn node(dir: &Path, client: &reqwest::Client) -> Server {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = start(&data, &[("EMPORIUM_OPERATOR_TOKEN", TOKEN)]);
    wait_ready(client, &server.base).await;
    server
}

/// Creates product `n` with a 5,000-character description that barely compresses; the
/// answer's status.
async fn create_product(client: &reqwest::Client, base: &str, n: usize) -> u16 {
    let description: String = (0..5000)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let body = json!({"name": format!("Filler {n}"), "category": "tops",
        "description": description,
        "skus": [{"sku_id": format!("fill-{n}"), "options": {}, "price": 1000, "stock": 1}]});
    let r = client
        .post(format!("{base}/api/v1/admin/products"))
        .bearer_auth(TOKEN)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    r.map_or(0, |r| r.status().as_u16())
}

async fn readyz(client: &reqwest::Client, base: &str) -> u16 {
    client
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn a_node_whose_disk_fills_up_says_it_is_not_ready() {
    let Some(disk) = Mount::tmpfs("6m") else {
        eprintln!("skipped: mounting a tmpfs is not allowed here");
        return;
    };
    let client = reqwest::Client::new();
    let server = node(&disk.at, &client).await;
    // When products are created until the disk is full and a creation fails
    let mut failed = None;
    for n in 0..20_000 {
        let status = create_product(&client, &server.base, n).await;
        if status != 201 {
            failed = Some(status);
            break;
        }
    }
    // Then the failure was a 503, and from then on the node is not ready
    assert_eq!(failed, Some(503), "the disk never filled");
    assert_eq!(readyz(&client, &server.base).await, 503);
    assert_eq!(create_product(&client, &server.base, 99_999).await, 503);
    assert_eq!(readyz(&client, &server.base).await, 503);
    // And the process is still up to say so
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none());
}

#[tokio::test]
async fn a_node_whose_disk_freezes_is_not_ready_until_it_thaws() {
    let Some(disk) = Mount::ext4() else {
        eprintln!("skipped: loop-mounting an ext4 image is not allowed here");
        return;
    };
    let client = reqwest::Client::new();
    let server = node(&disk.at, &client).await;
    assert_eq!(create_product(&client, &server.base, 0).await, 201);
    // When the disk freezes with a write on its way
    disk.freeze(true);
    let base = server.base.clone();
    let (c, b) = (client.clone(), base.clone());
    let write = tokio::spawn(async move { create_product(&c, &b, 1).await });
    // Then within the stall limit (10 s) the node says it is not ready
    let frozen_at = Instant::now();
    while readyz(&client, &base).await != 503 {
        assert!(
            frozen_at.elapsed() < Duration::from_secs(30),
            "still ready on a frozen disk"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(frozen_at.elapsed() >= Duration::from_secs(9));
    // And when it thaws, the node is ready again and the waiting write lands
    disk.freeze(false);
    let thawed_at = Instant::now();
    while readyz(&client, &base).await != 200 {
        assert!(
            thawed_at.elapsed() < Duration::from_secs(10),
            "not ready after the thaw"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answered = write.await.unwrap();
    assert!(matches!(answered, 201 | 503), "{answered}");
    assert_eq!(create_product(&client, &base, 2).await, 201);
}
