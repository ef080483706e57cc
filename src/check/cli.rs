//! `ringcast check`'s command line: every server flag (so the check sees the configuration
//! the server would run with: flags > `RINGCAST_*` > `--config` file > defaults), plus
//! `--json` and `--plan`.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, Command, CommandFactory};

use super::plan::PlanSpec;
use crate::config::{self, Args, Config, LoadError};

const ABOUT: &str = "Check this host's limits against a ringcast configuration.

Takes the same flags, RINGCAST_* variables and --config file as the server, and reports,
for each host limit (RLIMIT_NOFILE, fs.nr_open, fs.file-max, net.core.somaxconn,
tcp_max_syn_backlog, ip_local_port_range, tcp_mem/tcp_rmem/tcp_wmem, netdev_max_backlog,
vm.max_map_count, RLIMIT_MEMLOCK, io_uring, transparent huge pages, CPUs, memory, conntrack),
its current value, what the configured load needs, a verdict (ok / WARN / FAIL) and the fix.
The load is --max-connections, or the plan's connections with --plan. It reads only: it
changes nothing on the host.

--plan also estimates the memory, CPU cores and bandwidth the load needs (model constants
in src/check/model.rs, from the measured tables of tuning/README.md; the report says which
are still PROVISIONAL) and names the limit that binds first.

Exit status: 0 the load fits (WARNs allowed), 1 something must change (a FAIL), 2 bad flags.
See tuning/README.md for what each setting does and for the tuning files.";

const JSON_HELP: &str = "Print the report as JSON (schema \"ringcast-check/1\", documented in \
tuning/README.md) instead of the table";

const PLAN_HELP: &str = "Estimate what a load needs and which limit binds first: \
connections=N,rate=R,size=S,subscribers-per-topic=K (rate: messages published per second, \
all topics; size: payload bytes; each message reaches K subscribers). Counts take k/M \
suffixes, size the flags' units (64, 1KiB). Example: \
--plan connections=100k,rate=1000,size=64,subscribers-per-topic=1000";

/// A parsed `ringcast check` invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub config: Config,
    pub json: bool,
    pub plan: Option<PlanSpec>,
}

/// The server's command with the check's own flags; `--print-config` hidden (refused).
pub fn command() -> Command {
    Args::command()
        .bin_name("ringcast check")
        .about(ABOUT)
        .mut_arg("print_config", |a| a.hide(true))
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help(JSON_HELP),
        )
        .arg(
            Arg::new("plan")
                .long("plan")
                .value_name("SPEC")
                .value_parser(PlanSpec::parse)
                .help(PLAN_HELP),
        )
}

/// Parse `argv` (program name first; `check` already removed).
pub fn parse<I, T>(argv: I) -> Result<Invocation, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let (loaded, matches) = config::load_with(command(), argv)?;
    if loaded.print_config {
        let err = command().error(
            ErrorKind::ArgumentConflict,
            "--print-config does not apply to `ringcast check` (use `ringcast --print-config`)",
        );
        return Err(LoadError::Clap { err, file: None });
    }
    Ok(Invocation {
        config: loaded.config,
        json: matches.get_flag("json"),
        plan: matches.get_one::<PlanSpec>("plan").copied(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Invocation, LoadError> {
        parse(std::iter::once("ringcast").chain(args.iter().copied()))
    }

    #[test]
    fn server_flags_and_check_flags() {
        let i = run(&[
            "--max-connections",
            "200000",
            "--workers",
            "2",
            "--max-buffered",
            "2MiB",
            "--json",
            "--plan",
            "connections=1k,rate=10,size=64,subscribers-per-topic=10",
        ])
        .expect("valid");
        assert_eq!(i.config.max_connections, 200_000);
        assert_eq!(i.config.workers, 2);
        assert_eq!(i.config.max_buffered, 2 << 20);
        assert!(i.json);
        assert_eq!(i.plan.map(|p| p.connections), Some(1_000));
        let i = run(&[]).expect("defaults");
        assert!(!i.json && i.plan.is_none());
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["--plan", "connections=1"][..],
            &["--max-connections", "many"],
            &["--print-config"],
            &["--no-such-flag"],
        ] {
            let e = run(args).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
        let e = run(&["--plan", "connections=1"]).expect_err("refused");
        assert!(e.to_string().contains("--plan"), "{e}");
    }

    #[test]
    fn help_names_the_subcommand() {
        let help = command().render_help().to_string();
        assert!(help.contains("ringcast check"), "{help}");
        assert!(help.contains("--plan"), "{help}");
        assert!(!help.contains("--print-config"), "{help}");
    }
}
