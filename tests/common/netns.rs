//! Test hosts in Linux network namespaces, for partition tests: one bridge in this namespace
//! (the test's client at `.1`, Redis at `.2`) and a namespace per node joined to it by a veth
//! pair (node `i` at `.(11 + i)`). A partition is a blackhole route inside a node's namespace
//! (packets to that address fail at once, as if the link were gone), healed by deleting it.
//! Everything is removed when the [`Net`] is dropped. Needs root and a kernel that allows
//! network namespaces; [`Net::create`] says why not otherwise, and the test skips.
#![allow(dead_code)] // not every test binary uses every helper

use std::process::Command;

pub struct Net {
    /// Unique to this test process: names of links and namespaces, and the subnet.
    tag: String,
    subnet: String,
    nodes: usize,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// The bridge and `nodes` namespaces; `Err(why)` where this machine refuses them.
    pub fn create(nodes: usize) -> Result<Net, String> {
        let id = std::process::id();
        let net = Net {
            tag: format!("em{}", id % 100_000),
            subnet: format!("10.123.{}", 20 + id % 200),
            nodes,
        };
        net.teardown();
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        for host in [1, 2] {
            let addr = format!("{}.{host}/24", net.subnet);
            ip(&["addr", "add", &addr, "dev", &bridge])?;
        }
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..nodes {
            let (ns, outer, inner) = (net.ns(i), net.veth(i, 'o'), net.veth(i, 'i'));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            let addr = format!("{}/24", net.node_ip(i));
            ip(&[
                "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inner,
            ])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn veth(&self, i: usize, side: char) -> String {
        format!("{}v{i}{side}", self.tag)
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    /// Node `i`'s address.
    pub fn node_ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 11 + i)
    }

    /// Where Redis listens (this namespace, on the bridge).
    pub fn redis_ip(&self) -> String {
        format!("{}.2", self.subnet)
    }

    /// Node `i` can no longer reach `addr`, nor be reached from it.
    pub fn cut(&self, i: usize, addr: &str) {
        self.blackhole(i, "add", addr);
    }

    /// Undoes [`Net::cut`].
    pub fn heal(&self, i: usize, addr: &str) {
        self.blackhole(i, "del", addr);
    }

    /// Adds or deletes, in node `i`'s namespace, a blackhole route to `addr`.
    fn blackhole(&self, i: usize, op: &str, addr: &str) {
        let to = format!("{addr}/32");
        let ns = self.ns(i);
        ip(&["netns", "exec", &ns, "ip", "route", op, "blackhole", &to]).unwrap();
    }

    /// Cuts node `i` off from every other node, both ways (Redis and this namespace still
    /// reach it).
    pub fn isolate_from_peers(&self, i: usize) {
        for j in (0..self.nodes).filter(|j| *j != i) {
            self.cut(i, &self.node_ip(j));
            self.cut(j, &self.node_ip(i));
        }
    }

    /// Undoes [`Net::isolate_from_peers`].
    pub fn rejoin_peers(&self, i: usize) {
        for j in (0..self.nodes).filter(|j| *j != i) {
            self.heal(i, &self.node_ip(j));
            self.heal(j, &self.node_ip(i));
        }
    }

    fn teardown(&self) {
        for i in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.ns(i)]);
            let _ = ip(&["link", "del", &self.veth(i, 'o')]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}
