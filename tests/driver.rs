//! The epoll fallback: where io_uring is blocked (seccomp, `kernel.io_uring_disabled`)
//! monoio's FusionDriver runs on epoll. `MONOIO_FORCE_LEGACY_DRIVER=1` forces that path:
//! the server must say which driver it runs and serve exactly as on io_uring.

mod common;

use common::{STEP, Server, WsClient, sync_subscribers, wait_until};

fn start(env: &[(&str, &str)]) -> Server {
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--workers", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Server::start_args_env(&args, env).unwrap_or_else(|e| panic!("{e}"))
}

/// The start-up log line (stderr is pumped on a thread of its own, so it may trail the
/// ready line on stdout).
fn startup_line(srv: &Server) -> String {
    wait_until(STEP, "the start-up log line", || {
        srv.stderr()
            .lines()
            .find(|l| l.contains("ringcast started"))
            .map(String::from)
    })
}

fn echo_and_fan_out(srv: &Server) {
    let addr = srv.addr();
    let mut echo = WsClient::connect(addr, "/echo");
    echo.send_text("over the fallback driver");
    assert_eq!(echo.expect_text_str(), "over the fallback driver");
    let mut subs: Vec<WsClient> = (0..8)
        .map(|_| WsClient::connect(addr, "/sub/drv"))
        .collect();
    let mut publ = WsClient::connect(addr, "/pub/drv");
    sync_subscribers(&mut subs, |p| publ.send_text(p));
    for i in 0..200u32 {
        publ.send_binary(&i.to_be_bytes());
    }
    for s in &mut subs {
        for i in 0..200u32 {
            assert_eq!(s.expect_binary(), i.to_be_bytes());
        }
    }
    echo.send_close(1000, "bye");
    echo.expect_close(1000);
}

#[test]
fn forced_epoll_driver_is_logged_and_serves() {
    let srv = start(&[("MONOIO_FORCE_LEGACY_DRIVER", "1")]);
    let log = startup_line(&srv);
    assert!(
        log.contains("driver=\"epoll"),
        "start-up log must name the epoll driver:\n{log}"
    );
    echo_and_fan_out(&srv);
}

#[test]
fn default_driver_is_io_uring_here() {
    let srv = start(&[]);
    let log = startup_line(&srv);
    // CI hosts may block io_uring; then the fallback must be the one named.
    assert!(
        log.contains("driver=\"io_uring\"") || log.contains("driver=\"epoll"),
        "start-up log must name the driver:\n{log}"
    );
    echo_and_fan_out(&srv);
}
