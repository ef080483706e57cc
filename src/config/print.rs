//! `--print-config`: the effective `Config` as TOML, one line per key in `--help` order,
//! sizes and durations in the units the flags accept (`"64KiB"`, `"10s"`, `"500ms"`), the
//! worker count as resolved. The output is a valid `--config` file that loads back to the
//! same configuration; a setting that is unset (no TLS, every origin allowed) is written as
//! a comment, since TOML has no null.
//!
//! Owns: rendering only. Must not: parse or validate.

use std::fmt::Write as _;
use std::path::Path;

use clap::ValueEnum;

use super::Config;
use ringcast_proto::units::{format_duration, format_size};

impl Config {
    /// The configuration as a TOML document `--config` accepts. Fails only for a path that
    /// is not UTF-8 (TOML cannot hold it).
    pub fn to_toml(&self) -> Result<String, String> {
        let mut out = String::from(
            "# ringcast effective configuration (flags > RINGCAST_* environment > \
             config file > defaults).\n# Load it with: ringcast --config FILE\n",
        );
        let s = |v: String| toml::Value::String(v).to_string();
        let strings = |v: Vec<String>| {
            toml::Value::Array(v.into_iter().map(toml::Value::String).collect()).to_string()
        };
        let line = |out: &mut String, key: &str, value: String| {
            let _ = writeln!(out, "{key} = {value}");
        };
        line(
            &mut out,
            "listen",
            strings(self.listen.iter().map(ToString::to_string).collect()),
        );
        line(&mut out, "workers", self.workers.to_string());
        line(&mut out, "max_payload", s(format_size(self.max_payload)));
        line(&mut out, "max_buffered", s(format_size(self.max_buffered)));
        let policy = self
            .slow_consumer
            .to_possible_value()
            .map(|p| p.get_name().to_string())
            .ok_or("--print-config: slow-consumer policy has no name")?;
        line(&mut out, "slow_consumer", s(policy));
        line(
            &mut out,
            "max_connections",
            self.max_connections.to_string(),
        );
        match &self.allowed_origins {
            Some(list) => line(&mut out, "allowed_origins", strings(list.clone())),
            None => {
                let _ = writeln!(out, "# allowed_origins: not set, every Origin is allowed");
            }
        }
        line(
            &mut out,
            "max_header_bytes",
            s(format_size(self.max_header_bytes)),
        );
        line(&mut out, "max_topics", self.max_topics.to_string());
        line(
            &mut out,
            "incomplete_message_memory",
            s(format_size(self.incomplete_message_memory)),
        );
        line(
            &mut out,
            "handshake_timeout",
            s(format_duration(self.handshake_timeout)),
        );
        line(
            &mut out,
            "idle_timeout",
            s(format_duration(self.idle_timeout)),
        );
        line(
            &mut out,
            "close_timeout",
            s(format_duration(self.close_timeout)),
        );
        line(
            &mut out,
            "shutdown_timeout",
            s(format_duration(self.shutdown_timeout)),
        );
        line(
            &mut out,
            "deflate",
            s(if self.deflate { "on" } else { "off" }.into()),
        );
        line(
            &mut out,
            "deflate_min_size",
            s(format_size(self.deflate_min_size)),
        );
        if self.cluster.is_empty() {
            let _ = writeln!(out, "# cluster: not set, a single node");
        } else {
            line(&mut out, "cluster", strings(self.cluster.clone()));
        }
        line(&mut out, "node_id", s(self.node_id.clone()));
        line(&mut out, "cluster_stream", s(self.cluster_stream.clone()));
        line(
            &mut out,
            "cluster_replicas",
            self.cluster_replicas.to_string(),
        );
        if self.auth_key.is_empty() {
            let _ = writeln!(out, "# auth_key: not set");
        } else {
            let keys = self
                .auth_key
                .iter()
                .map(|p| utf8("auth_key", p))
                .collect::<Result<Vec<_>, _>>()?;
            line(&mut out, "auth_key", strings(keys));
        }
        match &self.auth_jwks {
            Some(p) => line(&mut out, "auth_jwks", s(utf8("auth_jwks", p)?)),
            None => {
                let _ = writeln!(out, "# auth_jwks: not set");
            }
        }
        for (key, v) in [
            ("auth_issuer", &self.auth_issuer),
            ("auth_audience", &self.auth_audience),
        ] {
            match v {
                Some(v) => line(&mut out, key, s(v.clone())),
                None => {
                    let _ = writeln!(out, "# {key}: not set");
                }
            }
        }
        for (key, v) in [
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_publish_rate", self.max_publish_rate),
        ] {
            match v {
                Some(n) => line(&mut out, key, n.to_string()),
                None => {
                    let _ = writeln!(out, "# {key}: not set, no limit");
                }
            }
        }
        match self.admin_listen {
            Some(a) => line(&mut out, "admin_listen", s(a.to_string())),
            None => {
                let _ = writeln!(
                    out,
                    "# admin_listen: not set, /metrics on the main listeners"
                );
            }
        }
        line(&mut out, "history_size", self.history_size.to_string());
        line(
            &mut out,
            "history_ttl",
            s(format_duration(self.history_ttl.unwrap_or_default())),
        );
        line(
            &mut out,
            "history_memory",
            s(format_size(self.history_memory)),
        );
        line(
            &mut out,
            "drain_window",
            s(format_duration(self.drain_window)),
        );
        for (key, path) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
            match path {
                Some(p) => {
                    let text = utf8(key, p)?;
                    line(&mut out, key, s(text));
                }
                None => {
                    let _ = writeln!(out, "# {key}: not set, serving ws:// without TLS");
                }
            }
        }
        Ok(out)
    }
}

fn utf8(key: &str, p: &Path) -> Result<String, String> {
    p.to_str().map(str::to_string).ok_or_else(|| {
        format!(
            "--print-config: the {key} path {} is not UTF-8 and cannot be written as TOML",
            p.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::config::file::known_keys;
    use crate::config::{Args, Config};
    use clap::{CommandFactory, Parser};

    fn defaults() -> Config {
        Config::validate(Args::parse_from(["ringcast", "--workers=4"])).expect("valid")
    }

    #[test]
    fn defaults_print_in_flag_units() {
        let t = defaults().to_toml().expect("printable");
        for want in [
            "listen = [\"127.0.0.1:9001\"]\n",
            "workers = 4\n",
            "max_payload = \"64KiB\"\n",
            "max_buffered = \"1MiB\"\n",
            "slow_consumer = \"close\"\n",
            "max_connections = 100000\n",
            "max_header_bytes = \"32KiB\"\n",
            "max_topics = 100000\n",
            "incomplete_message_memory = \"256MiB\"\n",
            "handshake_timeout = \"10s\"\n",
            "idle_timeout = \"120s\"\n",
            "close_timeout = \"5s\"\n",
            "shutdown_timeout = \"10s\"\n",
            "history_size = 1000\n",
            "history_ttl = \"300s\"\n",
            "history_memory = \"64MiB\"\n",
            "drain_window = \"0\"\n",
            "# tls_cert: not set",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        let _: toml::Table = toml::from_str(&t).expect("valid TOML");
    }

    #[test]
    fn every_file_key_is_printed() {
        let t = defaults().to_toml().expect("printable");
        for key in known_keys(&Args::command()) {
            assert!(
                t.contains(&format!("\n{key} = ")) || t.contains(&format!("\n# {key}: ")),
                "--print-config does not show '{key}':\n{t}"
            );
        }
    }

    #[test]
    fn strings_are_escaped() {
        let mut c = defaults();
        c.allowed_origins = Some(vec!["https://a\"b\\c".into()]);
        c.tls_cert = Some("/tmp/with \"quote\".pem".into());
        c.tls_key = Some("/tmp/k.pem".into());
        let t = c.to_toml().expect("printable");
        let table: toml::Table = toml::from_str(&t).expect("valid TOML");
        assert_eq!(
            table["allowed_origins"][0].as_str(),
            Some("https://a\"b\\c")
        );
        assert_eq!(table["tls_cert"].as_str(), Some("/tmp/with \"quote\".pem"));
    }
}
