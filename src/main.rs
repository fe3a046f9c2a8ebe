//! The `switchyard` command: serve, migrate, and bootstrap keys.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::config::{Config, ConfigSources};
use switchyard::db::virtual_keys::ChangeWriter;
use switchyard::virtual_keys::{self, CreateKeyRequest, KeyInfo, UpdateKeyRequest};

const USAGE: &str = "\
Switchyard — a realtime broker.

Usage:
  switchyard [serve] [--bind ADDR]        start the server (default command)
  switchyard migrate                      apply database migrations and exit
  switchyard keys create --name NAME      create a virtual key and print it once
        [--description TEXT] [--allowed-models LIST] [--max-budget USD]
        [--max-connections N] [--rpm N] [--rpd N] [--expires-at RFC3339] [--disabled]
  switchyard keys list                    list virtual keys (never the keys themselves)
  switchyard keys disable|enable ID       turn a key off (its live connections close) or on again
  switchyard keys delete ID               delete a key (its live connections close)
  switchyard keys system                  print a fresh spaces key pair (HSAFA_SECRET_KEY, HSAFA_PUBLIC_KEY)
  switchyard help

Options for every command:
  --profile NAME       overlay config/NAME.toml (or SWITCHYARD_PROFILE)
  --config-dir DIR     where profile files live (default: config, or SWITCHYARD_CONFIG_DIR)

Settings: config/default.toml lists them all; SWITCHYARD__SECTION__KEY overrides one.";

/// Parsed command line: the command words, and `--flag value` pairs.
struct Args {
    words: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

const SWITCHES: &[&str] = &["--disabled", "--help", "-h"];

impl Args {
    fn parse() -> Result<Args, String> {
        let mut words = Vec::new();
        let mut flags = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if let Some((name, value)) = arg.split_once('=').filter(|_| arg.starts_with("--")) {
                flags.push((name.to_string(), Some(value.to_string())));
            } else if SWITCHES.contains(&arg.as_str()) {
                flags.push((arg, None));
            } else if arg.starts_with('-') {
                let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                flags.push((arg, Some(value)));
            } else {
                words.push(arg);
            }
        }
        Ok(Args { words, flags })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.flags.iter().position(|(n, _)| n == name)?;
        self.flags.remove(i).1
    }

    fn has(&mut self, name: &str) -> bool {
        match self.flags.iter().position(|(n, _)| n == name) {
            Some(i) => {
                self.flags.remove(i);
                true
            }
            None => false,
        }
    }

    fn take_number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        self.take(name).map(|v| v.parse::<T>().map_err(|_| format!("{name}: '{v}' is not a number"))).transpose()
    }

    fn finish(&self) -> Result<(), String> {
        match self.flags.first() {
            Some((name, _)) => Err(format!("unknown option {name}")),
            None => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("switchyard: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = Args::parse()?;
    if args.has("--help") || args.has("-h") || args.words.first().map(String::as_str) == Some("help") {
        println!("{USAGE}");
        return Ok(());
    }
    let profile = args.take("--profile");
    let config_dir = args.take("--config-dir").map(PathBuf::from);
    let mut sources = ConfigSources::from_process(profile, config_dir);
    let words = std::mem::take(&mut args.words);
    match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["serve"] => {
            if let Some(bind) = args.take("--bind") {
                sources.overrides.push(("server.bind".into(), bind));
            }
            args.finish()?;
            let config = load(&sources)?;
            serve(config)
        }
        ["migrate"] => {
            args.finish()?;
            let config = load(&sources)?;
            let applied =
                actix_web::rt::System::new().block_on(switchyard::db::migrate(&config)).map_err(|e| e.to_string())?;
            println!("{applied} migration(s) applied");
            Ok(())
        }
        ["keys", "create"] => {
            let req = CreateKeyRequest {
                key_name: args.take("--name").ok_or("keys create needs --name NAME")?,
                description: args.take("--description"),
                is_enabled: Some(!args.has("--disabled")),
                expires_at: args
                    .take("--expires-at")
                    .map(|t| t.parse().map_err(|_| format!("--expires-at: '{t}' is not an RFC 3339 time")))
                    .transpose()?,
                allowed_models: args.take("--allowed-models"),
                rate_limit_rpm: args.take_number("--rpm")?,
                rate_limit_rpd: args.take_number("--rpd")?,
                max_connections: args.take_number("--max-connections")?,
                max_budget: args.take_number("--max-budget")?,
                metadata: None,
            };
            args.finish()?;
            let config = load(&sources)?;
            with_database(config, |state| async move {
                // Running servers see the new key in the key change log and announce it to operators.
                let created =
                    virtual_keys::create(&state.db, req, &ChangeWriter::command()).await.map_err(|e| e.to_string())?;
                eprintln!(
                    "Created virtual key {} ({}). It is shown only this once:",
                    created.key_info.id, created.key_info.key_name
                );
                println!("{}", created.virtual_key);
                Ok(())
            })
        }
        ["keys", "list"] => {
            args.finish()?;
            let config = load(&sources)?;
            with_database(config, |state| async move {
                let (rows, _) =
                    switchyard::db::virtual_keys::list(&state.db, 0, i64::MAX).await.map_err(|e| e.to_string())?;
                for row in &rows {
                    let info = KeyInfo::from(row);
                    println!(
                        "{}\t{}\t{}\t{}",
                        info.id,
                        info.key_prefix,
                        if info.is_enabled { "enabled" } else { "disabled" },
                        info.key_name
                    );
                }
                Ok(())
            })
        }
        ["keys", verb @ ("disable" | "enable"), id] => {
            let id = key_id(id)?;
            let enabled = *verb == "enable";
            args.finish()?;
            let config = load(&sources)?;
            with_database(config, |state| async move {
                let req = UpdateKeyRequest { is_enabled: Some(Some(enabled)), ..UpdateKeyRequest::default() };
                let details = serde_json::json!({ "isEnabled": enabled });
                // Running servers see the change in the key change log: they close a disabled key's
                // connections and tell operators.
                virtual_keys::update(&state.db, id, req, &details, &ChangeWriter::command())
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no virtual key with id {id}"))?;
                println!("virtual key {id} {}", if enabled { "enabled" } else { "disabled" });
                Ok(())
            })
        }
        ["keys", "delete", id] => {
            let id = key_id(id)?;
            args.finish()?;
            let config = load(&sources)?;
            with_database(config, |state| async move {
                if !switchyard::db::virtual_keys::delete(&state.db, id, &ChangeWriter::command())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("no virtual key with id {id}"));
                }
                println!("virtual key {id} deleted");
                Ok(())
            })
        }
        ["keys", "system"] => {
            args.finish()?;
            let (secret, public) = switchyard::spaces::auth::new_system_keys()?;
            println!("HSAFA_SECRET_KEY={secret}");
            println!("HSAFA_PUBLIC_KEY={public}");
            Ok(())
        }
        other => Err(format!("unknown command '{}'; see `switchyard help`", other.join(" "))),
    }
}

/// A key id as the CLI takes it: a positive number.
fn key_id(raw: &str) -> Result<i64, String> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| format!("'{raw}' is not a virtual key id"))
}

fn load(sources: &ConfigSources) -> Result<Config, String> {
    let config = Config::load(sources).map_err(|e| format!("configuration error: {e}"))?;
    switchyard::logging::init(&config.log.level);
    Ok(config)
}

fn serve(config: Config) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let running = switchyard::server::start(config).await.map_err(|e| e.to_string())?;
        running.wait().await.map_err(|e| e.to_string())
    })
}

/// Runs a one-off command against the configured database (migrated first).
fn with_database<F, Fut>(config: Config, work: F) -> Result<(), String>
where
    F: FnOnce(switchyard::state::AppState) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    actix_web::rt::System::new().block_on(async move {
        let state = switchyard::server::prepare(config).await.map_err(|e| e.to_string())?;
        work(state).await
    })
}
