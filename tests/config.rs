//! Configuration sources on the real binary: a `--config` TOML file, `RINGCAST_*`
//! environment variables (set on the child process only) and flags, with precedence
//! flag > environment > file > default, checked through `--print-config` (which starts no
//! server); bad files exit 2 naming the key, the path or both; the printed configuration
//! loads back to itself; and a server started from a config file listens where it says.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

/// Environment variables for the child only.
type Env<'a> = Vec<(&'a str, &'a str)>;

/// A file under Cargo's per-test temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("config-{}-{name}.toml", std::process::id()));
        std::fs::write(&p, text).expect("write config file");
        TempFile(p)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[path = "common/exec.rs"]
mod exec;

use exec::{Exited, drain};

fn ringcast(args: &[&str], env: &[(&str, &str)]) -> Command {
    exec::command(args, env)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Exited {
    exec::run(args, env, DEADLINE)
}

/// `--print-config` with these arguments and environment, parsed.
fn effective(args: &[&str], env: &[(&str, &str)]) -> toml::Table {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let out = run(&all, env);
    assert_eq!(
        out.code,
        Some(0),
        "--print-config {args:?} {env:?}: stderr:\n{}",
        out.stderr
    );
    toml::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("--print-config output is not TOML ({e}):\n{}", out.stdout))
}

fn str_of<'a>(t: &'a toml::Table, key: &str) -> &'a str {
    t.get(key)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("no string '{key}' in {t:?}"))
}

fn assert_exit_2(out: &Exited, needles: &[&str], ctx: &str) {
    assert_eq!(
        out.code,
        Some(2),
        "{ctx}: expected exit 2; stderr:\n{}",
        out.stderr
    );
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "{ctx}: stderr does not contain {n:?}:\n{}",
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains("panicked"),
        "{ctx}: panic:\n{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "{ctx}: nothing on stdout:\n{}",
        out.stdout
    );
}

#[test]
fn precedence_is_flag_over_env_over_file_over_default() {
    let f = TempFile::new(
        "precedence",
        r#"
max_payload = "1MiB"          # file only
max-buffered = "2MiB"         # file and env: env wins
idle_timeout = "30s"          # file, env and flag: flag wins
slow_consumer = "drop"
workers = 2
listen = ["127.0.0.1:7001", "127.0.0.1:7002"]
allowed_origins = ["https://a.example"]
"#,
    );
    let path = f.path();
    let env = [
        ("RINGCAST_MAX_BUFFERED", "3MiB"),
        ("RINGCAST_IDLE_TIMEOUT", "45s"),
    ];
    let t = effective(&["--config", &path, "--idle-timeout=500ms"], &env);
    assert_eq!(str_of(&t, "max_payload"), "1MiB", "file over default");
    assert_eq!(str_of(&t, "max_buffered"), "3MiB", "env over file");
    assert_eq!(str_of(&t, "idle_timeout"), "500ms", "flag over env");
    assert_eq!(str_of(&t, "slow_consumer"), "drop");
    assert_eq!(t["workers"].as_integer(), Some(2));
    assert_eq!(
        t["listen"].as_array().map(Vec::len),
        Some(2),
        "listen from file: {t:?}"
    );
    assert_eq!(t["allowed_origins"][0].as_str(), Some("https://a.example"));
    assert_eq!(str_of(&t, "max_header_bytes"), "32KiB", "default kept");
    assert_eq!(str_of(&t, "shutdown_timeout"), "10s", "default kept");

    // Without the file: env over default; the file named through RINGCAST_CONFIG works
    // like --config.
    let t = effective(&[], &env);
    assert_eq!(str_of(&t, "max_payload"), "64KiB");
    assert_eq!(str_of(&t, "max_buffered"), "3MiB");
    assert_eq!(str_of(&t, "idle_timeout"), "45s");
    let t = effective(&[], &[("RINGCAST_CONFIG", &path)]);
    assert_eq!(str_of(&t, "max_payload"), "1MiB");
    assert_eq!(str_of(&t, "max_buffered"), "2MiB");
    assert_eq!(str_of(&t, "idle_timeout"), "30s");

    // A repeatable flag given as a flag replaces the file's whole list.
    let t = effective(&["--config", &path, "--listen", "127.0.0.1:7003"], &[]);
    assert_eq!(
        t["listen"].as_array().map(|a| a.len()),
        Some(1),
        "flag list replaces file list: {t:?}"
    );
}

#[test]
fn workers_are_printed_resolved() {
    let t = effective(&[], &[]);
    let n = t["workers"].as_integer().expect("workers is an integer");
    assert!(n >= 1, "workers = {n}");
}

#[test]
fn unknown_key_exits_2_naming_the_key() {
    let f = TempFile::new("unknown", "max_paylod = \"1MiB\"\n");
    let path = f.path();
    let out = run(&["--config", &path, "--print-config"], &[]);
    assert_exit_2(
        &out,
        &[&format!("config file {path}: unknown key 'max_paylod'")],
        "unknown key",
    );
    let f = TempFile::new("section", "[server]\nlisten = [\"127.0.0.1:0\"]\n");
    let path = f.path();
    let out = run(&["--config", &path, "--print-config"], &[]);
    assert_exit_2(&out, &["unknown key 'server'"], "table");
}

#[test]
fn bad_value_in_file_exits_2_naming_key_and_file() {
    let cases = [
        ("max_payload = \"12XB\"", "max_payload"),
        ("max-payload = 0", "max-payload"),
        ("max_buffered = 1.5", "max_buffered"),
        ("workers = 0", "workers"),
        ("workers = \"many\"", "workers"),
        ("slow_consumer = \"maybe\"", "slow_consumer"),
        ("idle_timeout = \"5parsecs\"", "idle_timeout"),
        ("shutdown_timeout = \"0\"", "shutdown_timeout"),
        ("listen = [\"not-an-address\"]", "listen"),
        ("listen = \"127.0.0.1:99999\"", "listen"),
        ("max_header_bytes = \"100\"", "max_header_bytes"),
        ("allowed_origins = [true]", "allowed_origins"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let f = TempFile::new(&format!("bad-{i}"), &format!("{text}\n"));
        let path = f.path();
        let out = run(&["--config", &path, "--print-config"], &[]);
        assert_exit_2(
            &out,
            &[&format!("config file {path}"), &format!("'{key}'")],
            text,
        );
    }
}

#[test]
fn bad_file_value_fails_even_when_a_flag_overrides_it() {
    // A file is checked whole: a wrong value is reported even when not used.
    let f = TempFile::new("overridden", "max_payload = \"lots\"\n");
    let path = f.path();
    let out = run(
        &["--config", &path, "--print-config", "--max-payload=1KiB"],
        &[],
    );
    assert_exit_2(&out, &["'max_payload'"], "overridden bad value");
}

#[test]
fn missing_or_invalid_file_exits_2_naming_the_path() {
    let missing = format!(
        "{}/config-{}-does-not-exist.toml",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    let out = run(&["--config", &missing, "--print-config"], &[]);
    assert_exit_2(&out, &[&missing], "missing file via --config");
    let out = run(&["--print-config"], &[("RINGCAST_CONFIG", &missing)]);
    assert_exit_2(&out, &[&missing], "missing file via RINGCAST_CONFIG");
    let f = TempFile::new("not-toml", "max_payload = \n");
    let path = f.path();
    let out = run(&["--config", &path, "--print-config"], &[]);
    assert_exit_2(&out, &[&path, "not valid TOML"], "not TOML");
}

#[test]
fn print_config_round_trips_through_config() {
    let f = TempFile::new(
        "round-trip-source",
        r#"
listen = ["127.0.0.1:7001", "[::1]:7002"]
max_payload = 1000001
max_buffered = "3MiB"
slow_consumer = "drop"
max_connections = 777
allowed_origins = ["https://a.example", "https://b.example"]
max_header_bytes = "16KiB"
handshake_timeout = "1500ms"
idle_timeout = "0"
close_timeout = "250us"
tls_cert = "/etc/ringcast/cert.pem"
tls_key = "/etc/ringcast/key.pem"
"#,
    );
    let path = f.path();
    let sources: [(Vec<&str>, Env); 3] = [
        (vec![], vec![]),
        (
            vec!["--config", &path, "--workers=3"],
            vec![("RINGCAST_SHUTDOWN_TIMEOUT", "2m")],
        ),
        (vec!["--allowed-origins="], vec![]),
    ];
    for (args, env) in &sources {
        let mut first_args = vec!["--print-config"];
        first_args.extend_from_slice(args);
        let first = run(&first_args, env);
        assert_eq!(first.code, Some(0), "{args:?}: {}", first.stderr);
        let printed = TempFile::new("round-trip-printed", &first.stdout);
        let printed_path = printed.path();
        let second = run(&["--print-config", "--config", &printed_path], &[]);
        assert_eq!(second.code, Some(0), "reload: {}", second.stderr);
        assert_eq!(
            first.stdout, second.stdout,
            "{args:?} {env:?}: printed config does not load back to itself"
        );
    }
}

#[test]
fn print_config_starts_no_server() {
    // The port is held: a real start would fail to bind (exit 1).
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr").to_string();
    let out = run(&["--print-config", "--listen", &addr], &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("listen = [\"{addr}\"]")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("listening on"), "{}", out.stdout);
}

/// Kills the server on every exit path of the test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_starts_from_a_config_file() {
    let f = TempFile::new(
        "start",
        "listen = [\"127.0.0.1:0\"]\nworkers = 1\nmax_payload = \"1MiB\"\n",
    );
    let path = f.path();
    let mut child = ringcast(&["--config", &path], &[])
        .spawn()
        .expect("spawn ringcast");
    let stdout = child.stdout.take().expect("stdout piped");
    let stderr = drain(child.stderr.take());
    let mut server = Running(child);

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + DEADLINE;
    let addr: SocketAddr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("listening on 127.0.0.1:") {
                    let port: u16 = a.trim().parse().expect("port after 'listening on'");
                    assert_ne!(port, 0, "the chosen port is printed");
                    break SocketAddr::from(([127, 0, 0, 1], port));
                }
            }
            Err(_) => {
                let _ = server.0.kill();
                let _ = server.0.wait();
                panic!(
                    "no 'listening on 127.0.0.1:PORT' line within {DEADLINE:?}; stderr:\n{}",
                    stderr.recv_timeout(DEADLINE).unwrap_or_default()
                );
            }
        }
    };
    // It really accepts there.
    TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to the printed address");
    assert!(
        server.0.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    server.0.kill().expect("kill ringcast");
    server.0.wait().expect("reap ringcast");
}
