//! The resolved flags of this run ([`Invocation`]): recorded once after parsing, written into
//! every report and run directory, and read back by `--config REPORT.json`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use clap::{ArgAction, ArgMatches, Command};
use serde::{Deserialize, Serialize};

use super::{CONFIGURABLE, NOT_CONFIGURABLE};

/// How an experiment was invoked: its subcommand and every flag's resolved value (given on the
/// command line, taken from a config file, or defaulted). `hashguard COMMAND --config REPORT`
/// re-runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The subcommand, e.g. `attack`.
    pub command: String,
    /// Flag name (without `--`) → value; lists for comma-separated flags, booleans for switches.
    pub flags: BTreeMap<String, toml::Value>,
    /// The hashguard version that ran.
    pub hashguard_version: String,
}

static INVOCATION: OnceLock<Invocation> = OnceLock::new();

/// The current process's invocation, once [`record`] has run.
pub fn invocation() -> Option<&'static Invocation> {
    INVOCATION.get()
}

/// `report` as pretty JSON with the process's [`Invocation`] added as its `invocation` field.
pub fn report_json<R: Serialize>(report: &R) -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct WithInvocation<'a, R> {
        #[serde(flatten)]
        report: &'a R,
        #[serde(skip_serializing_if = "Option::is_none")]
        invocation: Option<&'a Invocation>,
    }
    serde_json::to_vec_pretty(&WithInvocation {
        report,
        invocation: invocation(),
    })
}

/// The invocation as a TOML file that `--config` reads back (saved in run directories).
pub fn invocation_toml(inv: &Invocation) -> String {
    let mut table = toml::Table::new();
    for (k, v) in &inv.flags {
        table.insert(k.clone(), v.clone());
    }
    format!(
        "# hashguard {} {}: every flag as it ran. Re-run with\n#   hashguard {} --config THIS_FILE [flags to change]\n{}",
        inv.command,
        inv.hashguard_version,
        inv.command,
        toml::to_string(&table).unwrap_or_default()
    )
}

/// Records the resolved flags of the parsed command line (`root` holds the global flags, the
/// subcommand's matches the rest) as this process's [`Invocation`].
pub fn record(cli: &Command, root: &ArgMatches) {
    let Some((command, sub_matches)) = root.subcommand() else {
        return;
    };
    if !CONFIGURABLE.contains(&command) {
        return;
    }
    let sub = cli.find_subcommand(command).expect("parsed subcommand");
    let mut flags = BTreeMap::new();
    let globals = cli.get_arguments().filter(|a| a.is_global_set());
    for (arg, matches) in globals
        .map(|a| (a, root))
        .chain(sub.get_arguments().map(|a| (a, sub_matches)))
    {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if NOT_CONFIGURABLE.contains(&id) {
            continue;
        }
        let Ok(Some(raw)) = matches.try_get_raw(id) else {
            continue;
        };
        let values: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
        let value = if matches!(arg.get_action(), ArgAction::SetTrue) {
            toml::Value::Boolean(values.first().map(String::as_str) == Some("true"))
        } else if arg.get_value_delimiter().is_some() {
            toml::Value::Array(values.iter().map(|v| typed(v)).collect())
        } else {
            match values.as_slice() {
                [one] => typed(one),
                _ => continue,
            }
        };
        flags.insert(long.to_string(), value);
    }
    let _ = INVOCATION.set(Invocation {
        command: command.to_string(),
        flags,
        hashguard_version: env!("CARGO_PKG_VERSION").to_string(),
    });
}

/// A flag's text as the TOML value that reads back to the same text: integers and plain
/// decimals as numbers, everything else (fractions such as `8/255`, names) as strings.
pub(crate) fn typed(text: &str) -> toml::Value {
    if let Ok(i) = text.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f.to_string().parse::<f64>() == Ok(f) => toml::Value::Float(f),
        _ => toml::Value::String(text.to_string()),
    }
}
