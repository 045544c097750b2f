//! `--config FILE`: an experiment's flags from a TOML file (or from the `invocation` a report
//! saved), overridden by the flags on the command line; and the resolved flags of this run,
//! written into every report and run so any figure can be re-run from its report alone.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Command};
use serde::Deserialize;

/// Subcommands that take `--config`.
pub const CONFIGURABLE: [&str; 6] = [
    "train",
    "adv-train",
    "eval",
    "attack",
    "detect",
    "reproduce",
];

/// Flags a config file may not set: they are not part of an experiment.
pub(crate) const NOT_CONFIGURABLE: [&str; 3] = ["help", "version", "config"];

/// A config file that cannot be used: the message names the file and the key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`expand`] did: the argument list to parse, and the config file with its keys.
pub struct Expanded {
    /// The command line with the config's flags spliced in after the subcommand.
    pub args: Vec<OsString>,
    /// The config file and the keys it supplied (absent without `--config`).
    pub source: Option<(PathBuf, BTreeSet<String>)>,
}

/// Replaces `--config FILE` in `args` by the file's flags, placed right after the subcommand so
/// clap parses them as if typed; a flag also given on the command line keeps the command line's
/// value. `cli` is the whole command definition (used to check the keys).
pub fn expand(args: Vec<OsString>, cli: &Command) -> Result<Expanded, ConfigError> {
    let (mut rest, file) = take_config_flag(args)?;
    let Some(file) = file else {
        return Ok(Expanded {
            args: rest,
            source: None,
        });
    };
    let position = rest.iter().position(|a| {
        cli.get_subcommands()
            .any(|s| a.to_str() == Some(s.get_name()))
    });
    let Some(position) = position else {
        return Err(ConfigError(
            "--config needs a subcommand: hashguard train|adv-train|eval|attack|detect|reproduce --config FILE".into(),
        ));
    };
    let command = rest[position].to_string_lossy().into_owned();
    if !CONFIGURABLE.contains(&command.as_str()) {
        return Err(ConfigError(format!(
            "`hashguard {command}` takes no --config (only {})",
            CONFIGURABLE.join(", ")
        )));
    }
    let sub = cli
        .find_subcommand(&command)
        .expect("found among the subcommands");
    let flags = read_flags(&file, &command)?;
    let given: BTreeSet<String> = rest
        .iter()
        .filter_map(|a| a.to_str()?.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect();
    let mut spliced = Vec::new();
    let mut keys = BTreeSet::new();
    for (key, value) in flags {
        let name = key.replace('_', "-");
        let arg = sub
            .get_arguments()
            .chain(cli.get_arguments().filter(|a| a.is_global_set()))
            .find(|a| a.get_long() == Some(name.as_str()))
            .filter(|a| !NOT_CONFIGURABLE.contains(&a.get_id().as_str()));
        let Some(arg) = arg else {
            let allowed: Vec<&str> = sub
                .get_arguments()
                .chain(cli.get_arguments().filter(|a| a.is_global_set()))
                .filter_map(|a| a.get_long())
                .filter(|l| !NOT_CONFIGURABLE.contains(l))
                .collect();
            return Err(ConfigError(format!(
                "{}: unknown key `{key}` for `hashguard {command}` (its keys: {})",
                file.display(),
                allowed.join(", ")
            )));
        };
        if given.contains(&name) {
            continue; // the command line wins
        }
        let flag = OsString::from(format!("--{name}"));
        let bad = |what: &str| {
            ConfigError(format!(
                "{}: key `{key}` {what} (see `hashguard {command} --help` for --{name})",
                file.display()
            ))
        };
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                if on {
                    spliced.push(flag);
                }
            }
            (ArgAction::SetTrue, _) => return Err(bad("is a switch: give true or false")),
            (_, toml::Value::Boolean(_)) => {
                return Err(bad("takes a value, not true/false"));
            }
            (_, toml::Value::Table(_)) => return Err(bad("is a table, not a value")),
            (_, toml::Value::Array(items)) => {
                let Some(delimiter) = arg.get_value_delimiter() else {
                    return Err(bad("takes one value, not a list"));
                };
                let items: Result<Vec<String>, ConfigError> = items
                    .into_iter()
                    .map(|v| scalar(v).ok_or_else(|| bad("holds a list of lists or tables")))
                    .collect();
                spliced.push(flag);
                spliced.push(items?.join(&delimiter.to_string()).into());
            }
            (_, v) => {
                spliced.push(flag);
                spliced.push(scalar(v).expect("a scalar").into());
            }
        }
        keys.insert(name);
    }
    rest.splice(position + 1..position + 1, spliced);
    Ok(Expanded {
        args: rest,
        source: Some((file, keys)),
    })
}

/// A TOML scalar as the text a flag would carry.
fn scalar(v: toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// Removes `--config FILE` / `--config=FILE` from `args`, returning the file.
fn take_config_flag(args: Vec<OsString>) -> Result<(Vec<OsString>, Option<PathBuf>), ConfigError> {
    let mut rest = Vec::with_capacity(args.len());
    let mut file = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let text = a.to_str().unwrap_or_default();
        let value = if text == "--config" {
            Some(
                args.next()
                    .ok_or_else(|| ConfigError("--config needs a file".into()))?,
            )
        } else {
            text.strip_prefix("--config=").map(OsString::from)
        };
        match value {
            Some(v) if file.is_some() => {
                return Err(ConfigError(format!(
                    "--config given twice ({})",
                    PathBuf::from(v).display()
                )));
            }
            Some(v) => file = Some(PathBuf::from(v)),
            None => rest.push(a),
        }
    }
    Ok((rest, file))
}

/// The flags of `file`: a TOML table of flags, or the `invocation` a JSON report saved (which
/// must be `command`'s).
pub(crate) fn read_flags(file: &Path, command: &str) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError(format!("{}: {e}", file.display())))?;
    if text.trim_start().starts_with('{') {
        #[derive(Deserialize)]
        struct Saved {
            invocation: Option<Invocation>,
        }
        let saved: Saved = serde_json::from_str(&text)
            .map_err(|e| ConfigError(format!("{}: not a hashguard report: {e}", file.display())))?;
        let inv = saved.invocation.ok_or_else(|| {
            ConfigError(format!(
                "{}: this report saved no invocation (written before reports kept one); pass the flags instead",
                file.display()
            ))
        })?;
        if inv.command != command {
            return Err(ConfigError(format!(
                "{}: written by `hashguard {}`, not `hashguard {command}`",
                file.display(),
                inv.command
            )));
        }
        return Ok(inv.flags.into_iter().collect());
    }
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let first = e.to_string();
        let first = first.lines().next().unwrap_or("not TOML").to_string();
        ConfigError(format!("{}: not a TOML config: {first}", file.display()))
    })?;
    Ok(table)
}

/// The one-line message for a clap error caused by a value from the config file, naming the
/// file and key; `None` when the error is not about a config value (clap reports it itself).
pub fn config_error(
    err: &clap::Error,
    source: &Option<(PathBuf, BTreeSet<String>)>,
) -> Option<String> {
    let (file, keys) = source.as_ref()?;
    let arg = err.get(clap::error::ContextKind::InvalidArg)?.to_string();
    let key = keys.iter().find(|k| {
        arg == format!("--{k}")
            || arg.starts_with(&format!("--{k} "))
            || arg.starts_with(&format!("--{k}="))
    })?;
    let message = err.render().to_string();
    let first = message.lines().next().unwrap_or_default();
    Some(format!(
        "{}, key `{key}`: {}",
        file.display(),
        first.trim_start_matches("error: ")
    ))
}

mod invocation;

#[cfg(test)]
pub(crate) use invocation::typed;
pub use invocation::{Invocation, invocation, invocation_toml, record, report_json};

#[cfg(test)]
mod tests;
