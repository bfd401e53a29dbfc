//! A local intake for the browser test and for trying the Explorer:
//! `cargo run -p cairn-intake --example serve -- --listen 127.0.0.1:0 --data-dir /tmp/x`.
//! Prints `token <TOKEN>` and then `listening on http://ADDR` once it accepts connections (the token (the
//! token of `<data-dir>/auth_token`, or `--token`; absent with `--no-auth`), and stops on
//! SIGTERM or Ctrl-C.

use std::io::Write;

fn main() {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut data_dir = None;
    let mut api_keys = Vec::new();
    let mut token = None;
    let mut no_auth = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = value(),
            "--data-dir" => data_dir = Some(value()),
            "--api-key" => api_keys.push(value()),
            "--token" => token = Some(value()),
            "--no-auth" => no_auth = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let mut cfg = cairn_intake::IntakeConfig::new(data_dir.expect("--data-dir is required"));
    cfg.listen = listen.parse().expect("--listen takes ADDR:PORT");
    cfg.api_keys = api_keys;
    if let Some(t) = token {
        cfg.auth = cairn_intake::IntakeAuth::Token(t);
    }
    if no_auth {
        cfg.auth = cairn_intake::IntakeAuth::Disabled;
    }
    let served = cairn_intake::serve_until_signal(cfg, |running| {
        // The token goes to stdout for the test driver only (a pipe it owns), never to a log.
        if let Some(t) = running.token() {
            println!("token {t}");
        }
        println!("listening on {}", running.url());
        let _ = std::io::stdout().flush();
    });
    if let Err(e) = served {
        eprintln!("serve: {e}");
        std::process::exit(1);
    }
}
