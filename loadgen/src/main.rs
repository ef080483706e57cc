use clap::Parser;
use mimalloc::MiMalloc;

use loadgen::cli::{Cli, Cmd};
use loadgen::scenario;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    let cli = Cli::parse();
    loadgen::clock::epoch();
    let res = match &cli.cmd {
        Cmd::Fanout(c) => scenario::fanout::run(c),
        Cmd::Connect(c) => scenario::connect::run(c),
        Cmd::Close(c) => scenario::close::run(c),
        Cmd::Shutdown(c) => scenario::shutdown::run(c),
        Cmd::Capacity(c) => scenario::capacity::run(c),
        Cmd::Churn(c) => scenario::churn::run(c),
    };
    match res {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("loadgen: {}", e.0);
            std::process::exit(3);
        }
    }
}
