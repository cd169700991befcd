//! Settings: the embedded `emporium.toml` defaults, then a settings file, then environment
//! variables (`EMPORIUM__SECTION__KEY`, and the short names of the public contract such as
//! `EMPORIUM_LISTEN`), then command-line flags. Secrets are `SecretString`s and never print.

pub use crate::chat::limits::ChatSettings;
use crate::cluster::config::{ClusterSettings, NodeSettings};
pub use crate::orders::settings::{
    CarrierSettings, OrderSettings, OutboxSettings, PaymentSettings, SandboxSettings,
};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const DEFAULTS: &str = include_str!("../emporium.toml");

/// The short environment names of the public contract, and the setting each one sets.
const SHORT_ENV: &[(&str, &str)] = &[
    ("EMPORIUM_LISTEN", "server.listen"),
    ("EMPORIUM_DATA_DIR", "storage.data_dir"),
    ("EMPORIUM_DEV_MODE", "dev_mode"),
    ("EMPORIUM_OPERATOR_TOKEN", "auth.operator_token"),
    ("EMPORIUM_JWT_SECRET", "auth.jwt_secret"),
    ("EMPORIUM_PII_KEY", "auth.pii_key"),
    ("EMPORIUM_AUTH_RATE_PER_IP", "auth.rate_per_ip"),
    ("EMPORIUM_ORDER_TTL_SECS", "orders.ttl_secs"),
    ("EMPORIUM_CARRIER_STEP_SECS", "sandbox.carrier_step_secs"),
];

/// The short name of `cluster.redis_url` (API.md), read only with a cluster file.
pub const REDIS_URL_ENV: &str = "EMPORIUM_REDIS_URL";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub dev_mode: bool,
    pub currency: String,
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub journal: JournalSettings,
    pub entities: EntitySettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub mail: MailSettings,
    pub orders: OrderSettings,
    pub outbox: OutboxSettings,
    pub payments: PaymentSettings,
    pub carrier: CarrierSettings,
    pub sandbox: SandboxSettings,
    pub chat: ChatSettings,
    /// Cluster mode: the cluster file's `[cluster]` (`serve --cluster FILE`).
    #[serde(default)]
    pub cluster: Option<ClusterSettings>,
    /// Which node of the cluster file this process is (`serve --node NAME`).
    #[serde(default)]
    pub node: Option<String>,
    /// `serve --demo` (dev mode): a demo shop on an empty data dir (`crate::demo`).
    #[serde(default)]
    pub demo: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// The base URL others reach this node at (carrier callbacks, the sandbox); defaults to
    /// `http://` and the bound address.
    #[serde(default)]
    pub public_url: String,
    pub body_limit_bytes: usize,
    /// WebSocket frames a second one drop's live stock may cost (`drops::live`).
    pub ws_fanout_frames_per_sec: usize,
    /// Seconds a new connection has to send its first request's head (`http::serve`).
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may wait for, or take to send, any request's head (`http::serve`).
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_idle_timeout_secs() -> u64 {
    120
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub cache_mb: u64,
    /// zstd compression in sled, for a new data dir (an existing one keeps its own).
    #[serde(default)]
    pub compression: bool,
    /// sled's log segment in KiB, for a new data dir (an existing one keeps its own).
    #[serde(default = "default_segment_kib")]
    pub segment_kib: usize,
}

fn default_segment_kib() -> usize {
    crate::persistence::sled_journal::SEGMENT_BYTES / 1024
}

#[derive(Debug, Clone, Deserialize)]
pub struct JournalSettings {
    pub max_batch_events: usize,
    pub linger_micros: u64,
    pub snapshot_every: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EntitySettings {
    pub ask_timeout_ms: u64,
    pub idle_secs: u64,
    pub max_in_flight: usize,
    /// How often each kind's reminder timer reads the reminders due (deadlines are met within
    /// this); the order kind's is `outbox.poll_ms`.
    #[serde(default = "default_reminder_poll_ms")]
    pub reminder_poll_ms: u64,
}

fn default_reminder_poll_ms() -> u64 {
    100
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    #[serde(default)]
    pub operator_token: Option<SecretString>,
    /// HS256 signing secret of access tokens (at least 32 bytes).
    #[serde(default)]
    pub jwt_secret: Option<SecretString>,
    /// Base64 of the 32-byte AES-256-GCM key that seals personal data.
    #[serde(default)]
    pub pii_key: Option<SecretString>,
    /// Comma-separated base64 keys that only open (after a rotation).
    #[serde(default)]
    pub pii_previous_keys: Option<SecretString>,
    /// Base64 key of the blind indexes (email lookups); defaults to one derived from `pii_key`.
    /// Set it explicitly before rotating `pii_key`.
    #[serde(default)]
    pub index_key: Option<SecretString>,
    pub access_ttl_secs: i64,
    pub refresh_ttl_days: i64,
    /// Auth requests per minute per client IP; 0 turns the limit off.
    pub rate_per_ip: u32,
    pub argon2_m_kib: u32,
    pub argon2_t: u32,
    pub argon2_p: u32,
    /// Password hashes computed at once; more wait.
    pub hash_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    /// An SMTP relay; empty sends no real mail (dev mode keeps mails in the dev mailbox).
    #[serde(default)]
    pub smtp_host: String,
    pub smtp_port: u16,
    pub from: String,
}

/// What the command line may override.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// A settings file; required to exist when given. Without it `./emporium.toml` is read if
    /// present.
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    /// The cluster file: cluster mode (Redis), as node [`Overrides::node`].
    pub cluster_file: Option<PathBuf>,
    pub node: Option<String>,
    /// `serve --demo`.
    pub demo: bool,
}

impl Settings {
    /// Loads settings from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Settings, config::ConfigError> {
        Self::load_with_env(overrides, std::env::vars().collect())
    }

    /// Loads settings with the given environment (tests pass their own).
    pub fn load_with_env(
        overrides: &Overrides,
        env: HashMap<String, String>,
    ) -> Result<Settings, config::ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        builder = match &overrides.config_file {
            Some(path) => builder.add_source(File::from(path.as_path()).required(true)),
            None => builder.add_source(File::with_name("emporium.toml").required(false)),
        };
        if let Some(path) = &overrides.cluster_file {
            builder = builder.add_source(File::from(path.as_path()).required(true));
        }
        builder = builder.add_source(
            Environment::with_prefix("EMPORIUM")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env.clone())),
        );
        for (name, key) in SHORT_ENV {
            builder = builder.set_override_option(*key, env.get(*name).cloned())?;
        }
        // `EMPORIUM_REDIS_URL` (API.md) is the cluster's Redis; one node without a cluster
        // file journals to sled and uses none (`serve` says so when it is set).
        if overrides.cluster_file.is_some() {
            let redis = env.get(REDIS_URL_ENV).cloned();
            builder = builder.set_override_option("cluster.redis_url", redis)?;
        }
        builder = builder
            .set_override_option(
                "storage.data_dir",
                overrides.data_dir.as_ref().map(|p| p.display().to_string()),
            )?
            .set_override_option("server.listen", overrides.listen.map(|a| a.to_string()))?
            .set_override_option("node", overrides.node.clone())?
            .set_override_option("demo", overrides.demo.then_some(true))?;
        let mut unknown = Vec::new();
        let read: Result<Settings, _> = serde_ignored::deserialize(builder.build()?, |path| {
            // serde_ignored writes an optional section (`cluster`) as a `?` step.
            let path = path.to_string();
            let steps: Vec<&str> = path.split('.').filter(|step| *step != "?").collect();
            unknown.push(steps.join("."))
        });
        let typos = || {
            format!(
                "unknown setting {} (a typo? from the config file, the cluster file or an \
                 EMPORIUM__ variable; emporium.toml lists every setting)",
                unknown.join(", ")
            )
        };
        let mut settings = match read {
            // A required setting spelt wrong is missing: name the misspelling beside it.
            Err(e) if !unknown.is_empty() => {
                return Err(config::ConfigError::Message(format!("{e}; {}", typos())));
            }
            read => read?,
        };
        if !unknown.is_empty() {
            return Err(config::ConfigError::Message(typos()));
        }
        settings.validate()?;
        // A cluster node serves HTTP where the cluster file says, unless told otherwise.
        if let (Some(node), None) = (settings.cluster_node(), overrides.listen) {
            settings.server.listen = node.http;
        }
        Ok(settings)
    }

    fn validate(&self) -> Result<(), config::ConfigError> {
        let bad = |what: &str| {
            Err(config::ConfigError::Message(format!(
                "invalid setting: {what}"
            )))
        };
        if !(1..=300).contains(&self.server.header_read_timeout_secs) {
            return bad("server.header_read_timeout_secs must be 1 to 300");
        }
        if !(1..=3600).contains(&self.server.idle_timeout_secs) {
            return bad("server.idle_timeout_secs must be 1 to 3600");
        }
        if self.server.ws_fanout_frames_per_sec < 1_000 {
            return bad("server.ws_fanout_frames_per_sec must be at least 1000");
        }
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes must be at least 1024");
        }
        if self.journal.max_batch_events == 0 || self.journal.snapshot_every == 0 {
            return bad("journal.max_batch_events and journal.snapshot_every must be positive");
        }
        if self.entities.max_in_flight == 0 || self.entities.ask_timeout_ms == 0 {
            return bad("entities.max_in_flight and entities.ask_timeout_ms must be positive");
        }
        let kib = self.storage.segment_kib;
        if !kib.is_power_of_two() || !(32..=16_384).contains(&kib) {
            return bad("storage.segment_kib must be a power of two from 32 to 16384");
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return bad("storage.data_dir must not be empty");
        }
        if !(0.0..=86_400.0).contains(&self.sandbox.carrier_step_secs) {
            return bad("sandbox.carrier_step_secs must be between 0 and 86400");
        }
        match (&self.cluster, &self.node) {
            (None, None) => {}
            (None, Some(_)) => return bad("--node needs a cluster file (--cluster FILE)"),
            (Some(_), None) => return bad("--cluster needs the name of this node (--node NAME)"),
            (Some(cluster), Some(node)) => {
                cluster.check().map_err(config::ConfigError::Message)?;
                cluster.node(node).map_err(config::ConfigError::Message)?;
            }
        }
        Ok(())
    }

    /// In cluster mode, this node's entry of the cluster file.
    pub fn cluster_node(&self) -> Option<&NodeSettings> {
        self.cluster.as_ref()?.node(self.node.as_deref()?).ok()
    }

    /// The base URL others reach this node at.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// Whether this node serves the sandbox gateway and carrier.
    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox.enabled.unwrap_or(self.dev_mode)
    }

    pub fn runtime_config(&self) -> crate::actors::RuntimeConfig {
        crate::actors::RuntimeConfig {
            ask_timeout: Duration::from_millis(self.entities.ask_timeout_ms),
            idle_after: Duration::from_secs(self.entities.idle_secs),
            max_in_flight: self.entities.max_in_flight,
            reminder_period: Duration::from_millis(self.entities.reminder_poll_ms.max(10)),
            snapshot_every: self.journal.snapshot_every,
        }
    }

    pub fn writer_config(&self) -> crate::persistence::sled_journal::WriterConfig {
        crate::persistence::sled_journal::WriterConfig {
            max_batch_events: self.journal.max_batch_events,
            linger: Duration::from_micros(self.journal.linger_micros),
            cache_bytes: self.storage.cache_mb * 1024 * 1024,
            compression: self.storage.compression,
            segment_bytes: self.storage.segment_kib * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load_without_any_file() {
        let s = Settings::load_with_env(&Overrides::default(), env(&[])).unwrap();
        assert!(s.dev_mode);
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.storage.data_dir, PathBuf::from("./data"));
        assert!(s.auth.operator_token.is_none());
        assert_eq!(s.auth.access_ttl_secs, 900);
        assert_eq!(s.auth.rate_per_ip, 60);
        assert_eq!(s.chat.messages_per_minute, 60);
        assert_eq!(s.writer_config().segment_bytes, 128 * 1024);
    }

    #[test]
    fn environment_overrides_the_file_and_flags_override_both() {
        let e = env(&[
            ("EMPORIUM__JOURNAL__SNAPSHOT_EVERY", "7"),
            ("EMPORIUM_LISTEN", "127.0.0.1:9999"),
            ("EMPORIUM_DEV_MODE", "false"),
            ("EMPORIUM_OPERATOR_TOKEN", "s3cret"),
            ("EMPORIUM_DATA_DIR", "/tmp/from-env"),
        ]);
        let flags = Overrides {
            data_dir: Some(PathBuf::from("/tmp/from-flag")),
            ..Overrides::default()
        };
        let s = Settings::load_with_env(&flags, e).unwrap();
        assert_eq!(s.journal.snapshot_every, 7);
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:9999");
        assert!(!s.dev_mode);
        assert_eq!(s.auth.operator_token.unwrap().expose_secret(), "s3cret");
        assert_eq!(s.storage.data_dir, PathBuf::from("/tmp/from-flag"));
    }

    #[test]
    fn outside_dev_mode_outside_providers_sign_with_their_own_secrets() {
        let check = |vars: &[(&str, &str)]| {
            let mut all = vec![("EMPORIUM_DEV_MODE", "false")];
            all.extend_from_slice(vars);
            let s = Settings::load_with_env(&Overrides::default(), env(&all)).unwrap();
            let providers = (&s.payments, &s.carrier);
            crate::orders::settings::check_providers(s.dev_mode, s.sandbox_enabled(), providers)
                .map_err(|e| e.to_string())
        };
        // Given no gateway and no sandbox: a warning, payments could never work
        let warned = check(&[]).unwrap().unwrap();
        assert!(warned.contains("payments.base_url is unset"), "{warned}");
        // Given outside services signing with the published defaults: anyone could forge them
        let gateway = (
            "EMPORIUM__PAYMENTS__BASE_URL",
            "https://api.tosspayments.com",
        );
        let carrier = ("EMPORIUM__CARRIER__BASE_URL", "https://carrier.example.com");
        let why = check(&[gateway, carrier]).unwrap_err();
        assert!(
            why.contains("payments.webhook_secret is the published"),
            "{why}"
        );
        let webhook = (
            "EMPORIUM__PAYMENTS__WEBHOOK_SECRET",
            "whsec-of-the-merchant",
        );
        let why = check(&[gateway, carrier, webhook]).unwrap_err();
        assert!(
            why.contains("carrier.callback_secret is the published"),
            "{why}"
        );
        // Then secrets of their own, or a sandbox served on purpose, are fine
        let callback = ("EMPORIUM__CARRIER__CALLBACK_SECRET", "cbsec-of-the-carrier");
        assert_eq!(check(&[gateway, carrier, webhook, callback]), Ok(None));
        assert_eq!(check(&[("EMPORIUM__SANDBOX__ENABLED", "true")]), Ok(None));
    }

    #[test]
    fn a_setting_that_does_not_exist_is_refused_by_name() {
        // Given a typo in a variable's section and one in a setting's name
        for (var, named) in [
            ("EMPORIUM__JOURNL__SNAPSHOT_EVERY", "journl"),
            ("EMPORIUM__JOURNAL__SNAPHOT_EVERY", "journal.snaphot_every"),
        ] {
            // When the settings load, then they are refused, naming it
            let e = Settings::load_with_env(&Overrides::default(), env(&[(var, "5")]));
            let why = e.unwrap_err().to_string();
            assert!(
                why.contains(named) && why.contains("unknown setting"),
                "{why}"
            );
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::load_with_env(
            &Overrides::default(),
            env(&[("EMPORIUM_OPERATOR_TOKEN", "hunter2-token")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2-token"));
    }

    #[test]
    fn invalid_values_are_refused_with_a_message() {
        let err = Settings::load_with_env(
            &Overrides::default(),
            env(&[("EMPORIUM__JOURNAL__SNAPSHOT_EVERY", "0")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("snapshot_every"));
        for kib in ["100", "16", "32768"] {
            let err = Settings::load_with_env(
                &Overrides::default(),
                env(&[("EMPORIUM__STORAGE__SEGMENT_KIB", kib)]),
            )
            .unwrap_err();
            assert!(err.to_string().contains("segment_kib"), "{kib}: {err}");
        }
        let err = Settings::load_with_env(
            &Overrides::default(),
            env(&[("EMPORIUM_LISTEN", "not an address")]),
        );
        assert!(err.is_err());
        let missing = Overrides {
            config_file: Some(PathBuf::from("/nonexistent/emporium.toml")),
            ..Overrides::default()
        };
        assert!(Settings::load_with_env(&missing, env(&[])).is_err());
    }

    #[test]
    fn the_cluster_file_is_a_settings_layer_and_names_the_node() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster.toml");
        let overrides = |node: &str| Overrides {
            cluster_file: Some(file.clone()),
            node: Some(node.into()),
            ..Overrides::default()
        };
        let redis = [("EMPORIUM__CLUSTER__REDIS_URL", "redis://127.0.0.1:7000/1")];
        let s = Settings::load_with_env(&overrides("n2"), env(&redis)).unwrap();
        let cluster = s.cluster.as_ref().unwrap();
        assert_eq!((cluster.shards, cluster.nodes.len()), (64, 3));
        assert_eq!(cluster.redis_url, "redis://127.0.0.1:7000/1");
        // The contract's short name sets it too; without a cluster file it sets nothing
        let short = [(REDIS_URL_ENV, "redis://10.0.0.5:6379/2")];
        let s = Settings::load_with_env(&overrides("n2"), env(&short)).unwrap();
        assert_eq!(s.cluster.unwrap().redis_url, "redis://10.0.0.5:6379/2");
        let alone = Settings::load_with_env(&Overrides::default(), env(&short)).unwrap();
        assert!(alone.cluster.is_none());
        // A typo in the cluster's settings is named as it would be written
        let typo = [("EMPORIUM__CLUSTER__LEASE_TLL_MS", "3000")];
        let why = Settings::load_with_env(&overrides("n2"), env(&typo)).unwrap_err();
        assert!(
            why.to_string()
                .contains("unknown setting cluster.lease_tll_ms"),
            "{why}"
        );
        // A required one misspelt is named with the misspelling beside it
        let misspelt =
            std::env::temp_dir().join(format!("emporium-typo-{}.toml", std::process::id()));
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&misspelt, text.replace("lease_ttl_ms", "lease_tll_ms")).unwrap();
        let why = Settings::load_with_env(
            &Overrides {
                cluster_file: Some(misspelt.clone()),
                node: Some("n2".into()),
                ..Overrides::default()
            },
            env(&[]),
        )
        .unwrap_err()
        .to_string();
        std::fs::remove_file(&misspelt).unwrap();
        assert!(why.contains("lease_ttl_ms"), "{why}");
        assert!(
            why.contains("unknown setting cluster.lease_tll_ms"),
            "{why}"
        );
        assert_eq!(
            s.server.listen,
            "127.0.0.1:8082".parse().unwrap(),
            "the node's http"
        );
        let err = Settings::load_with_env(&overrides("n9"), env(&[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("node `n9` is not in the cluster file"),
            "{err}"
        );
        let alone = Overrides {
            node: Some("n1".into()),
            ..Overrides::default()
        };
        assert!(Settings::load_with_env(&alone, env(&[])).is_err());
    }
}
