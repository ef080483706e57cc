//! Where each setting comes from, and which source wins: a command-line flag, then its
//! `RINGCAST_*` environment variable, then the `--config` file, then the built-in default.
//!
//! Owns: the merge. Must not: know any particular flag (the file's keys and the flags'
//! parsers come from clap), open sockets, or start anything.
//!
//! How: a first clap pass over the command line and the environment only tells, through
//! `ArgMatches::value_source`, which flags were given there and where `--config` points.
//! Every file entry for a flag that was *not* given there is then put in front of the
//! command line as `--flag=value`, and clap parses the whole again: so file values go
//! through exactly the parsers and cross-flag rules (`--tls-cert` needs `--tls-key`) that
//! flags do, and a flag or variable always overrides the file.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::builder::Resettable;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

use super::file::{self, Entry};
use super::{Args, Config};

/// The outcome of reading every source.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated, merged configuration.
    pub config: Config,
    /// `--print-config` was given: print `config.to_toml()` and exit instead of serving.
    pub print_config: bool,
}

/// Why no configuration could be made.
#[derive(Debug)]
pub enum LoadError {
    /// A usage error found by clap, or `--help`/`--version`; clap renders it and picks the
    /// exit code (2 for errors, 0 for help). `file` is set when a config file was merged in.
    Clap {
        err: clap::Error,
        file: Option<PathBuf>,
    },
    /// A bad config file or value; the message names the key or flag. Exit 2.
    Invalid(String),
}

impl LoadError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::Clap { err, .. } => err.exit_code(),
            LoadError::Invalid(_) => 2,
        }
    }

    /// Print the error the way a CLI should (help on stdout, errors on stderr) and exit.
    pub fn exit(self) -> ! {
        use std::io::Write;
        let code = self.exit_code();
        match &self {
            LoadError::Clap { err, file } => {
                let _ = err.print();
                if let Some(p) = file.as_deref().filter(|_| err.use_stderr()) {
                    eprintln!(
                        "note: settings were also read from config file {}",
                        p.display()
                    );
                }
            }
            LoadError::Invalid(msg) => eprintln!("error: {msg}"),
        }
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(code)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Clap { err, file } => {
                write!(f, "{}", err.to_string().trim_end())?;
                if let Some(p) = file {
                    write!(
                        f,
                        "\nnote: settings were also read from config file {}",
                        p.display()
                    )?;
                }
                Ok(())
            }
            LoadError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for LoadError {}

/// Read the command line `argv` (program name first, as `std::env::args_os()`), the
/// `RINGCAST_*` environment and the `--config` file, and merge them: flag > environment >
/// file > default.
pub fn load<I, T>(argv: I) -> Result<Loaded, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    load_with(Args::command(), argv).map(|(loaded, _)| loaded)
}

/// As [`load`], parsing the command line with `cmd`: the server's flags (`Args::command()`)
/// plus flags of a subcommand's own (`ringcast check --json`). The matches are returned so
/// the caller reads those. The config file's keys stay exactly the server's flags.
pub fn load_with<I, T>(cmd: Command, argv: I) -> Result<(Loaded, ArgMatches), LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    if argv.is_empty() {
        argv.push("ringcast".into());
    }
    let clap_err = |err, file: Option<&Path>| LoadError::Clap {
        err,
        file: file.map(Path::to_path_buf),
    };

    // Pass 1: command line and environment. Cross-flag requirements wait for pass 2, as
    // the file may supply the partner flag.
    let first = cmd
        .clone()
        .mut_args(|a| a.requires(Resettable::Reset).required(false))
        .try_get_matches_from(&argv)
        .map_err(|e| clap_err(e, None))?;
    let file = match first.get_one::<PathBuf>("config") {
        Some(path) => Some(file::read(path, &Args::command()).map_err(LoadError::Invalid)?),
        None => None,
    };

    // The file's entries for flags given neither on the command line nor in the
    // environment.
    let from_file: Vec<&Entry> = file
        .iter()
        .flat_map(|f| f.entries.iter())
        .filter(|e| {
            !matches!(
                first.value_source(&e.id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .collect();
    let file_path = file.as_ref().map(|f| f.path.as_path());

    // Pass 2: everything, the file's entries placed right after the program name (before
    // any `--`), so each reads as if typed there.
    let injected = from_file.iter().flat_map(|e| e.args.iter().cloned());
    argv.splice(1..1, injected);
    let mut cmd = cmd;
    let matches = cmd
        .try_get_matches_from_mut(&argv)
        .map_err(|e| clap_err(e, file_path.filter(|_| !from_file.is_empty())))?;
    let args = Args::from_arg_matches(&matches).map_err(|e| clap_err(e.format(&mut cmd), None))?;
    let print_config = args.print_config;

    let config = Config::validate(args).map_err(|inv| {
        match (file_path, from_file.iter().find(|e| e.id == inv.id)) {
            (Some(path), Some(entry)) => LoadError::Invalid(format!(
                "config file {}: invalid value for key '{}': {}",
                path.display(),
                entry.key,
                inv.reason
            )),
            _ => LoadError::Invalid(inv.to_string()),
        }
    })?;
    Ok((
        Loaded {
            config,
            print_config,
        },
        matches,
    ))
}

#[cfg(test)]
mod tests {
    //! These run in the test process, whose environment is assumed to hold no
    //! `RINGCAST_*` variable; precedence over the environment is tested on the real binary
    //! in tests/config.rs, with the variables set on the child only.

    use super::*;
    use crate::config::SlowConsumer;
    use std::time::Duration;

    /// A config file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let p = std::env::temp_dir().join(format!(
                "ringcast-config-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&p, text).expect("write temp config");
            TempFile(p)
        }

        fn arg(&self) -> String {
            format!("--config={}", self.0.display())
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn run(args: &[&str]) -> Result<Loaded, LoadError> {
        load(std::iter::once("ringcast").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_without_a_file() {
        let l = run(&[]).expect("defaults are valid");
        assert!(!l.print_config);
        assert_eq!(l.config.max_payload, 64 << 10);
        assert_eq!(l.config.listen, ["127.0.0.1:9001".parse().expect("addr")]);
        assert_eq!(l.config.slow_consumer, SlowConsumer::Close);
    }

    #[test]
    fn file_beats_default_and_flag_beats_file() {
        let f = TempFile::new(
            "precedence",
            "max_payload = \"1MiB\"\nslow-consumer = \"drop\"\nidle_timeout = \"30s\"\n\
             listen = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\nworkers = 3\n",
        );
        let l = run(&[&f.arg(), "--max-payload=2MiB", "--print-config"]).expect("loads");
        assert!(l.print_config);
        let c = l.config;
        assert_eq!(c.max_payload, 2 << 20, "flag wins");
        assert_eq!(c.slow_consumer, SlowConsumer::Drop, "file beats default");
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.workers, 3);
        assert_eq!(c.max_buffered, 1 << 20, "default kept");
        // A repeatable flag on the command line replaces the file's whole list.
        let l = run(&[&f.arg(), "--listen=127.0.0.1:7003"]).expect("loads");
        assert_eq!(l.config.listen, ["127.0.0.1:7003".parse().expect("addr")]);
    }

    #[test]
    fn cross_flag_rules_see_every_source() {
        let both = TempFile::new("tls-both", "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n");
        let l = run(&[&both.arg()]).expect("cert and key from the file");
        assert_eq!(l.config.tls_cert.as_deref(), Some(Path::new("/c.pem")));
        let half = TempFile::new("tls-half", "tls_key = \"/k.pem\"\n");
        let l = run(&[&half.arg(), "--tls-cert=/c2.pem"]).expect("cert flag, key file");
        assert_eq!(l.config.tls_key.as_deref(), Some(Path::new("/k.pem")));
        let e = run(&[&half.arg()]).expect_err("key without cert");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("--tls-cert") && msg.contains("config file"),
            "{msg}"
        );
    }

    #[test]
    fn refused_values_from_the_file_name_the_key_and_the_file() {
        let f = TempFile::new("zero", "max-payload = 0\n");
        let e = run(&[&f.arg()]).expect_err("0 refused");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("config file {}:", f.0.display()))
                && msg.contains("key 'max-payload'")
                && msg.contains("at least 1 byte"),
            "{msg}"
        );
        // The same value from a flag still names the flag.
        let e = run(&["--max-payload=0"]).expect_err("0 refused");
        assert_eq!(
            e.to_string(),
            "invalid value for '--max-payload': must be at least 1 byte"
        );
        // Overridden by a flag: the file's refused value is not used, so no error.
        run(&[&f.arg(), "--max-payload=1KiB"]).expect("flag overrides");
    }

    #[test]
    fn missing_file_and_unknown_key_exit_2() {
        let e = run(&["--config=/nonexistent/h-config.toml"]).expect_err("missing");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("/nonexistent/h-config.toml"), "{e}");
        let f = TempFile::new("unknown", "max_paylod = \"1MiB\"\n");
        let e = run(&[&f.arg()]).expect_err("unknown key");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("unknown key 'max_paylod'"), "{e}");
    }

    #[test]
    fn help_is_not_an_error() {
        let e = run(&["--help"]).expect_err("help is reported through clap");
        assert_eq!(e.exit_code(), 0);
    }

    #[test]
    fn printed_config_loads_back_to_the_same_config() {
        let f = TempFile::new(
            "source",
            "listen = [\"127.0.0.1:7001\", \"[::1]:7002\"]\nworkers = 2\n\
             max_payload = 1000001\nidle_timeout = \"1500ms\"\nclose_timeout = \"250us\"\n\
             allowed_origins = [\"https://a.example\", \"https://b \\\"q\\\".example\"]\n\
             tls_cert = \"/p/c.pem\"\ntls_key = \"/p/k.pem\"\nslow_consumer = \"drop\"\n",
        );
        for extra in [
            vec![f.arg()],
            vec![],
            vec!["--allowed-origins=".to_string()],
        ] {
            let args: Vec<&str> = extra.iter().map(String::as_str).collect();
            let first = run(&args).expect("loads").config;
            let printed = first.to_toml().expect("printable");
            let back = TempFile::new("printed", &printed);
            let second = run(&[&back.arg()]).expect("printed config loads").config;
            assert_eq!(format!("{first:?}"), format!("{second:?}"), "{printed}");
            assert_eq!(second.to_toml().expect("printable"), printed);
        }
    }
}
