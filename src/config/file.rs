//! The `--config` file: a TOML table whose keys are the long flag names, in snake_case or
//! kebab-case (`max_payload = "1MiB"`, `listen = ["127.0.0.1:9001"]`, `workers = 2`), each
//! value being what the flag would take (plain integers too, for numbers and sizes).
//!
//! Owns: reading the file, refusing unknown keys and values of the wrong TOML type, checking
//! every value with the flag's own clap parser (so the file accepts exactly what the flag
//! does), and turning the entries into flag arguments. Must not: decide precedence (that is
//! `sources`), or read the environment.
//!
//! The set of keys is taken from the clap command itself, so a new flag is settable from
//! the file without touching this module. Not settable from a file: `config`,
//! `print_config`, `help`, `version`.

use std::error::Error as _;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::builder::Resettable;
use clap::error::{ContextKind, ContextValue};
use clap::{Arg, Command};

/// Flags that make no sense inside a config file.
const NOT_IN_FILE: [&str; 4] = ["help", "version", "config", "print_config"];

/// A parsed and checked config file.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// The path as given (for messages).
    pub path: PathBuf,
    /// One entry per key (sorted by key, as TOML tables are unordered).
    pub entries: Vec<Entry>,
}

/// One key of the file, already checked by the flag's parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The clap id of the flag (`max_payload`).
    pub id: String,
    /// The key as written in the file (`max-payload` or `max_payload`), for messages.
    pub key: String,
    /// The flag arguments equivalent to this entry (`--max-payload=1MiB`); empty for a
    /// boolean flag set to `false`.
    pub args: Vec<OsString>,
}

/// The key a flag has in a config file (`max_payload` for `--max-payload`), for the flags a
/// file may set; `None` for the others.
pub fn file_key(arg: &Arg) -> Option<String> {
    if NOT_IN_FILE.contains(&arg.get_id().as_str()) || arg.is_positional() {
        return None;
    }
    arg.get_long().map(|l| l.replace('-', "_"))
}

/// Read and check the file at `path` against the flags of `cmd`. Errors name the path, and
/// the key when one is at fault.
pub fn read(path: &Path, cmd: &Command) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: cannot read it: {e}", path.display()))?;
    parse(&text, path, cmd)
}

/// Check `text` (the contents of the file at `path`) against the flags of `cmd`.
pub fn parse(text: &str, path: &Path, cmd: &Command) -> Result<FileConfig, String> {
    let at = |msg: String| format!("config file {}: {msg}", path.display());
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| at(format!("not valid TOML: {}", e.to_string().trim_end())))?;

    // The same command with nothing but the values themselves checked: no environment,
    // no cross-flag requirements, no required flags.
    let mut probe = cmd.clone().no_binary_name(true).mut_args(|a| {
        a.env(Resettable::Reset)
            .requires(Resettable::Reset)
            .required(false)
    });

    let mut entries: Vec<Entry> = Vec::with_capacity(table.len());
    for (key, value) in &table {
        let wanted = key.replace('-', "_");
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| file_key(a).as_deref() == Some(wanted.as_str()))
        else {
            return Err(at(format!(
                "unknown key '{key}' (known keys: {})",
                known_keys(cmd).join(", ")
            )));
        };
        let id = arg.get_id().as_str().to_string();
        if let Some(prev) = entries.iter().find(|e| e.id == id) {
            return Err(at(format!(
                "keys '{}' and '{key}' are the same setting",
                prev.key
            )));
        }
        let long = arg.get_long().unwrap_or(id.as_str());
        let args = to_args(arg, long, value).map_err(|m| at(format!("key '{key}' {m}")))?;
        if let Err(e) = probe.try_get_matches_from_mut(&args) {
            return Err(at(format!(
                "invalid value {value} for key '{key}': {}",
                detail(&e)
            )));
        }
        entries.push(Entry {
            id,
            key: key.clone(),
            args,
        });
    }
    Ok(FileConfig {
        path: path.to_path_buf(),
        entries,
    })
}

/// Every key a file may hold, in `--help` order.
pub fn known_keys(cmd: &Command) -> Vec<String> {
    cmd.get_arguments().filter_map(file_key).collect()
}

/// The flag arguments saying what `value` says; the error completes "key 'k' ...".
fn to_args(arg: &Arg, long: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    use toml::Value as V;
    let flag = |v: &str| OsString::from(format!("--{long}={v}"));
    if !arg.get_action().takes_values() {
        return match value {
            V::Boolean(true) => Ok(vec![OsString::from(format!("--{long}"))]),
            V::Boolean(false) => Ok(Vec::new()),
            other => Err(format!("must be true or false, not {}", describe(other))),
        };
    }
    let scalar = |v: &V| match v {
        V::String(s) => Ok(flag(s)),
        V::Integer(i) => Ok(flag(&i.to_string())),
        other => Err(format!(
            "must be a string or an integer, not {}",
            describe(other)
        )),
    };
    match value {
        V::Array(items) if matches!(arg.get_action(), clap::ArgAction::Append) => {
            if items.is_empty() {
                // As `--flag ""` on the command line: an explicitly empty list.
                return Ok(vec![flag("")]);
            }
            items.iter().map(scalar).collect()
        }
        V::Array(_) => Err("takes a single value, not an array".into()),
        other => Ok(vec![scalar(other)?]),
    }
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Integer(_) => "an integer".into(),
        other => format!("a {}", other.type_str()),
    }
}

/// The reason in a clap value error, without clap's framing (`error:`, usage, hints).
fn detail(e: &clap::Error) -> String {
    if let Some(src) = e.source() {
        return src.to_string();
    }
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        return format!("expected one of: {}", valid.join(", "));
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Args;
    use clap::CommandFactory;

    fn parse_str(text: &str) -> Result<FileConfig, String> {
        parse(text, Path::new("/etc/ringcast.toml"), &Args::command())
    }

    fn args_of(fc: &FileConfig, id: &str) -> Vec<String> {
        fc.entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| {
                e.args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn every_flag_but_the_meta_ones_is_a_key() {
        let keys = known_keys(&Args::command());
        for k in [
            "listen",
            "workers",
            "max_payload",
            "max_buffered",
            "slow_consumer",
            "max_connections",
            "allowed_origins",
            "max_header_bytes",
            "handshake_timeout",
            "idle_timeout",
            "close_timeout",
            "shutdown_timeout",
            "tls_cert",
            "tls_key",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        for k in ["config", "print_config", "help", "version"] {
            assert!(!keys.iter().any(|x| x == k), "{k} must not be a key");
        }
    }

    #[test]
    fn values_become_flag_arguments() {
        let fc = parse_str(
            r#"
            listen = ["127.0.0.1:9001", "[::1]:9002"]
            workers = 2
            max-payload = "1MiB"
            max_buffered = 4096
            slow_consumer = "drop"
            idle_timeout = "30s"
            allowed_origins = ["https://a.example"]
            tls_cert = "/path/cert.pem"
            tls_key = "/path/key.pem"
            "#,
        )
        .expect("valid file");
        assert_eq!(
            args_of(&fc, "listen"),
            ["--listen=127.0.0.1:9001", "--listen=[::1]:9002"]
        );
        assert_eq!(args_of(&fc, "workers"), ["--workers=2"]);
        assert_eq!(args_of(&fc, "max_payload"), ["--max-payload=1MiB"]);
        assert_eq!(args_of(&fc, "max_buffered"), ["--max-buffered=4096"]);
        assert_eq!(args_of(&fc, "slow_consumer"), ["--slow-consumer=drop"]);
        assert_eq!(args_of(&fc, "idle_timeout"), ["--idle-timeout=30s"]);
        assert_eq!(
            args_of(&fc, "allowed_origins"),
            ["--allowed-origins=https://a.example"]
        );
        assert_eq!(args_of(&fc, "tls_cert"), ["--tls-cert=/path/cert.pem"]);
        // `tls_cert` without `tls_key` is only refused once all sources are merged.
        assert!(parse_str("tls_cert = \"/c.pem\"").is_ok());
        // A single string is accepted for a list flag, like the flag itself.
        let fc = parse_str("listen = \"127.0.0.1:1\"").expect("valid");
        assert_eq!(args_of(&fc, "listen"), ["--listen=127.0.0.1:1"]);
        // An empty list stays an explicitly empty list.
        let fc = parse_str("allowed_origins = []").expect("valid");
        assert_eq!(args_of(&fc, "allowed_origins"), ["--allowed-origins="]);
    }

    #[test]
    fn unknown_and_repeated_keys_are_refused() {
        let e = parse_str("max_paylod = \"1MiB\"").unwrap_err();
        assert!(
            e.starts_with("config file /etc/ringcast.toml: unknown key 'max_paylod'"),
            "{e}"
        );
        assert!(e.contains("max_payload"), "lists known keys: {e}");
        for text in [
            "config = \"/other.toml\"",
            "print_config = true",
            "[server]\nlisten = [\"127.0.0.1:1\"]",
        ] {
            let e = parse_str(text).unwrap_err();
            assert!(e.contains("unknown key"), "{text}: {e}");
        }
        let e = parse_str("max_payload = \"1MiB\"\nmax-payload = \"2MiB\"").unwrap_err();
        assert!(
            e.contains("keys 'max-payload' and 'max_payload' are the same setting"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_file() {
        let cases = [
            ("max_payload = \"12XB\"", "max_payload", "unknown size unit"),
            ("max_payload = -5", "max_payload", "not a size"),
            ("max_payload = 1.5", "max_payload", "not a float"),
            ("workers = 0", "workers", "not in 1..=1024"),
            ("workers = \"many\"", "workers", "many"),
            ("workers = [1, 2]", "workers", "single value"),
            ("slow_consumer = \"maybe\"", "slow_consumer", "close, drop"),
            (
                "idle_timeout = \"5parsecs\"",
                "idle_timeout",
                "unknown duration unit",
            ),
            ("idle_timeout = 5", "idle_timeout", "needs a unit"),
            (
                "listen = [\"not-an-address\"]",
                "listen",
                "invalid socket address",
            ),
            ("listen = [true]", "listen", "not a boolean"),
            ("tls_cert = { a = 1 }", "tls_cert", "not a table"),
        ];
        for (text, key, why) in cases {
            let e = parse_str(text).unwrap_err();
            assert!(e.starts_with("config file /etc/ringcast.toml: "), "{e}");
            assert!(e.contains(&format!("'{key}'")), "{text}: {e}");
            assert!(e.contains(why), "{text}: expected {why:?} in {e}");
        }
    }

    #[test]
    fn not_toml_and_missing_file() {
        let e = parse_str("max_payload = ").unwrap_err();
        assert!(e.contains("not valid TOML"), "{e}");
        let e = read(
            Path::new("/nonexistent/ringcast-h-config.toml"),
            &Args::command(),
        )
        .unwrap_err();
        assert!(
            e.starts_with("config file /nonexistent/ringcast-h-config.toml: cannot read it"),
            "{e}"
        );
    }
}
