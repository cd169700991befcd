//! The cluster file (`cluster.toml`, API.md "Cluster"): the shard count, where Redis is, the
//! lease TTL, and every node with its HTTP and cluster addresses. It is read as one more
//! settings layer (`emporium serve --cluster FILE --node NAME`), so any of it can be
//! overridden by environment (`EMPORIUM__CLUSTER__REDIS_URL`, ...).

use serde::Deserialize;
use std::net::SocketAddr;

/// The most shards a cluster may have (each shard is a lease renewed every TTL).
pub const MAX_SHARDS: u32 = 4096;

#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSettings {
    /// Fixed for the life of the cluster: Redis remembers it and refuses another.
    pub shards: u32,
    pub redis_url: String,
    /// How long a shard lease lasts without renewal (ms); the owner renews every third of it.
    pub lease_ttl_ms: u64,
    pub nodes: Vec<NodeSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeSettings {
    pub name: String,
    /// Where the node serves HTTP.
    pub http: SocketAddr,
    /// Where the node listens for its peers (ractor_cluster).
    pub cluster: SocketAddr,
}

impl ClusterSettings {
    /// Why the file cannot run a cluster, if it cannot: each message names what to fix.
    pub fn check(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(format!(
                "cluster.shards must be between 1 and {MAX_SHARDS} (it is {})",
                self.shards
            ));
        }
        if self.lease_ttl_ms < 300 {
            return Err("cluster.lease_ttl_ms must be at least 300".into());
        }
        if self.nodes.is_empty() {
            return Err("the cluster file lists no [[cluster.nodes]]".into());
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let valid_name = !node.name.is_empty()
                && node.name.len() <= 64
                && node
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                return Err(format!(
                    "cluster node name `{}` must be 1 to 64 of a-z, A-Z, 0-9, - and _",
                    node.name
                ));
            }
            for other in &self.nodes[..i] {
                if other.name == node.name {
                    return Err(format!("cluster node `{}` is listed twice", node.name));
                }
                let shared = [other.http, other.cluster]
                    .iter()
                    .find(|a| **a == node.http || **a == node.cluster)
                    .copied();
                if let Some(addr) = shared {
                    return Err(format!(
                        "cluster nodes `{}` and `{}` both use {addr}",
                        other.name, node.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The node called `name`, or a message listing the names there are.
    pub fn node(&self, name: &str) -> Result<&NodeSettings, String> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
            format!(
                "node `{name}` is not in the cluster file (its nodes: {})",
                names.join(", ")
            )
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> ClusterSettings {
        let node = |n: u16| NodeSettings {
            name: format!("n{n}"),
            http: format!("127.0.0.1:{}", 8080 + n).parse().unwrap(),
            cluster: format!("127.0.0.1:{}", 9080 + n).parse().unwrap(),
        };
        ClusterSettings {
            shards: 64,
            redis_url: "redis://127.0.0.1:6379/0".into(),
            lease_ttl_ms: 3000,
            nodes: vec![node(1), node(2), node(3)],
        }
    }

    #[test]
    fn a_good_file_passes_and_finds_its_nodes() {
        let c = three();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.node("n2").unwrap().http.port(), 8082);
        assert_eq!(
            c.node("n9").unwrap_err(),
            "node `n9` is not in the cluster file (its nodes: n1, n2, n3)"
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let mut c = three();
        c.shards = 0;
        assert!(c.check().unwrap_err().contains("cluster.shards"));
        let mut c = three();
        c.nodes[2].name = "n1".into();
        assert_eq!(c.check().unwrap_err(), "cluster node `n1` is listed twice");
        let mut c = three();
        c.nodes[1].cluster = c.nodes[0].http;
        assert!(c.check().unwrap_err().contains("both use 127.0.0.1:8081"));
        let mut c = three();
        c.nodes[0].name = "n 1".into();
        assert!(c.check().unwrap_err().contains("must be 1 to 64"));
        let mut c = three();
        c.nodes.clear();
        assert!(c.check().unwrap_err().contains("no [[cluster.nodes]]"));
    }
}
