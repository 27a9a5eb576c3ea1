//! `key list`, `key add`, `key remove ID`, `key passwd`: the passwords (key files) of an
//! encrypted repository.
//!
//! Every subcommand first opens the repository with its current password (`--password-file`,
//! `RESPALDO_PASSWORD` or a prompt). The new password of `key add` and `key passwd` comes from
//! `--new-password-file`, `RESPALDO_NEW_PASSWORD` or a prompt (asked twice).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use respaldo::{KdfParams, KeyEntry, Repository};
use serde_json::{Value, json};

use crate::args::{Global, KdfArgs};
use crate::output::{self, Table, Ui};
use crate::password;

/// `key`.
#[derive(Debug, ClapArgs)]
pub struct KeyArgs {
    /// What to do with the keys.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// The subcommands of `key`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys (passwords) of the repository; `*` marks the one whose password was given.
    List,
    /// Add a key: one more password that opens the repository.
    Add(NewKeyArgs),
    /// Remove a key. Neither the only key nor the one whose password was given can be removed.
    Remove {
        /// The key: its id or a unique prefix of it (the 8 digits `key list` shows suffice).
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change the password: add a key for the new password, then remove the key of the one
    /// given.
    Passwd(NewKeyArgs),
}

/// Options of `key add` and `key passwd`.
#[derive(Debug, ClapArgs)]
pub struct NewKeyArgs {
    /// Read the new password from FILE (first line). Without it: RESPALDO_NEW_PASSWORD, else a
    /// prompt on a terminal.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// The cost of deriving the key from the new password.
    #[command(flatten)]
    pub kdf: KdfArgs,
}

/// Runs `key`.
pub fn run(global: &Global, ui: &Ui, args: &KeyArgs) -> Result<ExitCode> {
    let repo = super::open(global)?;
    match &args.command {
        KeyCommand::List => list(ui, &repo),
        KeyCommand::Add(new) => add(ui, &repo, new),
        KeyCommand::Remove { id } => remove(ui, &repo, id),
        KeyCommand::Passwd(new) => passwd(ui, &repo, new),
    }
}

fn list(ui: &Ui, repo: &Repository) -> Result<ExitCode> {
    let keys = repo.keys()?;
    let mut out = output::stdout();
    if ui.json {
        let list: Vec<Value> = keys.iter().map(key_json).collect();
        output::write_json_pretty(&mut out, &Value::Array(list))?;
    } else {
        let mut table = Table::new(&[" ID", "User", "Host", "Created", "KDF (Argon2id)"]);
        for key in &keys {
            let marker = if key.current { '*' } else { ' ' };
            table.row(vec![
                format!("{marker}{}", output::short_id(&key.name)),
                key.username.clone(),
                key.hostname.clone(),
                output::local_time(created_ns(key)),
                kdf_text(&key.kdf),
            ]);
        }
        table.write(&mut out)?;
        if !ui.quiet {
            let n = keys.len();
            writeln!(
                out,
                "{n} key{}; * marks the key of the password given",
                if n == 1 { "" } else { "s" }
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn add(ui: &Ui, repo: &Repository, args: &NewKeyArgs) -> Result<ExitCode> {
    refuse_unencrypted(repo)?;
    let new_password = password::for_new_key(args.new_password_file.as_deref())?;
    let kdf = args.kdf.params();
    let name = repo.add_key(&new_password, kdf)?;
    let mut out = output::stdout();
    if ui.json {
        output::write_json(
            &mut out,
            &json!({
                "message_type": "key_added",
                "id": name,
                "short_id": output::short_id(&name),
                "kdf": kdf_json(&kdf),
            }),
        )?;
    } else if !ui.quiet {
        writeln!(
            out,
            "saved new key {}: both passwords open the repository",
            output::short_id(&name)
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn remove(ui: &Ui, repo: &Repository, id: &str) -> Result<ExitCode> {
    let name = repo.remove_key(id)?;
    let mut out = output::stdout();
    if ui.json {
        output::write_json(
            &mut out,
            &json!({"message_type": "key_removed", "id": name, "short_id": output::short_id(&name)}),
        )?;
    } else if !ui.quiet {
        writeln!(out, "removed key {}", output::short_id(&name))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn passwd(ui: &Ui, repo: &Repository, args: &NewKeyArgs) -> Result<ExitCode> {
    refuse_unencrypted(repo)?;
    let old = repo.store().opened_key().unwrap_or_default().to_string();
    let new_password = password::for_new_key(args.new_password_file.as_deref())?;
    let kdf = args.kdf.params();
    let name = repo.change_password(&new_password, kdf)?;
    let mut out = output::stdout();
    if ui.json {
        output::write_json(
            &mut out,
            &json!({
                "message_type": "password_changed",
                "id": name,
                "short_id": output::short_id(&name),
                "removed": old,
                "kdf": kdf_json(&kdf),
            }),
        )?;
    } else if !ui.quiet {
        writeln!(
            out,
            "saved new key {} and removed old key {}: only the new password opens the \
             repository now",
            output::short_id(&name),
            output::short_id(&old)
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Fails before asking for a new password that could not be used.
fn refuse_unencrypted(repo: &Repository) -> Result<()> {
    if !repo.store().config().is_encrypted() {
        bail!("the repository is not encrypted: it has no keys");
    }
    Ok(())
}

fn created_ns(key: &KeyEntry) -> i64 {
    key.created_unix_seconds.saturating_mul(1_000_000_000)
}

/// Argon2id cost as `64.00 MiB, 3 passes` (and the lanes when more than one).
pub(super) fn kdf_text(kdf: &KdfParams) -> String {
    let mut text = format!(
        "{}, {} pass{}",
        output::bytes(u64::from(kdf.memory_kib) * 1024),
        kdf.iterations,
        if kdf.iterations == 1 { "" } else { "es" }
    );
    if kdf.parallelism > 1 {
        text.push_str(&format!(", {} lanes", kdf.parallelism));
    }
    text
}

/// Argon2id cost as JSON: `algorithm`, `memory_kib`, `iterations`, `parallelism`.
pub(super) fn kdf_json(kdf: &KdfParams) -> Value {
    json!({
        "algorithm": "argon2id",
        "memory_kib": kdf.memory_kib,
        "iterations": kdf.iterations,
        "parallelism": kdf.parallelism,
    })
}

fn key_json(key: &KeyEntry) -> Value {
    json!({
        "id": key.name,
        "short_id": output::short_id(&key.name),
        "current": key.current,
        "username": key.username,
        "hostname": key.hostname,
        "created": output::rfc3339(created_ns(key)),
        "created_unix_seconds": key.created_unix_seconds,
        "kdf": kdf_json(&key.kdf),
    })
}
