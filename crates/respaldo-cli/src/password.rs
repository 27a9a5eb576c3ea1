//! Where the repository password comes from: `--password-file` / `RESPALDO_PASSWORD_FILE`,
//! then `RESPALDO_PASSWORD`, then a prompt when standard input is a terminal.
//!
//! Without any of them and without a terminal, commands fail with [`MissingPassword`], which
//! `main` turns into exit code 12 (as for a wrong password).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::args::Global;

/// Environment variable holding the password.
pub const PASSWORD_ENV: &str = "RESPALDO_PASSWORD";

/// No password was given for an encrypted repository and none can be asked for.
#[derive(Debug)]
pub struct MissingPassword {
    /// What needed the password ("open the repository", "create an encrypted repository").
    pub purpose: &'static str,
}

impl std::fmt::Display for MissingPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a password is needed to {}: set {PASSWORD_ENV}, pass --password-file FILE (or set \
             RESPALDO_PASSWORD_FILE), or run in a terminal to be asked for it",
            self.purpose
        )
    }
}

impl std::error::Error for MissingPassword {}

/// The password given by file or environment, if any.
pub fn given(global: &Global) -> Result<Option<String>> {
    from_file_or_env(global.password_file.as_deref(), PASSWORD_ENV)
}

/// The first line of `file` when one is named, else the variable `env` when it is set.
pub fn from_file_or_env(file: Option<&Path>, env: &str) -> Result<Option<String>> {
    if let Some(file) = file {
        return read_file(file).map(Some);
    }
    match std::env::var(env) {
        Ok(p) => Ok(Some(p)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{env} is not valid UTF-8"),
    }
}

/// Asks for the password of an existing repository on the terminal; `None` without a terminal.
pub fn prompt_existing() -> Result<Option<String>> {
    prompt("enter password for repository: ")
}

/// Asks for a password on the terminal with `prompt`; `None` without a terminal.
pub fn prompt(prompt: &str) -> Result<Option<String>> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let password =
        rpassword::prompt_password(prompt).context("cannot read the password from the terminal")?;
    Ok(Some(password))
}

/// The password for a new encrypted repository: given, or asked twice on the terminal.
pub fn for_init(global: &Global) -> Result<String> {
    let password = match given(global)? {
        Some(p) => p,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(MissingPassword {
                    purpose: "create an encrypted repository (or pass --no-encryption)",
                }
                .into());
            }
            let first = rpassword::prompt_password("enter password for new repository: ")
                .context("cannot read the password from the terminal")?;
            let second = rpassword::prompt_password("enter password again: ")
                .context("cannot read the password from the terminal")?;
            if first != second {
                bail!("the passwords do not match; nothing was created");
            }
            first
        }
    };
    if password.is_empty() {
        bail!("an empty password protects nothing: choose one, or pass --no-encryption");
    }
    Ok(password)
}

/// Environment variable holding the new password of `key add` and `key passwd`.
pub const NEW_PASSWORD_ENV: &str = "RESPALDO_NEW_PASSWORD";

/// The password of a new key (`key add`, `key passwd`): the first line of `file`
/// (`--new-password-file`), else `RESPALDO_NEW_PASSWORD`, else asked twice on the terminal.
/// Without any of them the command fails (exit 1, not 12: the repository's password was fine).
pub fn for_new_key(file: Option<&Path>) -> Result<String> {
    if let Some(file) = file {
        return read_file(file);
    }
    match std::env::var(NEW_PASSWORD_ENV) {
        Ok(p) => return Ok(p),
        Err(std::env::VarError::NotPresent) => {}
        Err(std::env::VarError::NotUnicode(_)) => bail!("{NEW_PASSWORD_ENV} is not valid UTF-8"),
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "a new password is needed: pass --new-password-file FILE, set {NEW_PASSWORD_ENV}, or \
             run in a terminal to be asked for it; nothing was changed"
        );
    }
    let first = rpassword::prompt_password("enter new password: ")
        .context("cannot read the password from the terminal")?;
    let second = rpassword::prompt_password("enter new password again: ")
        .context("cannot read the password from the terminal")?;
    if first != second {
        bail!("the passwords do not match; nothing was changed");
    }
    Ok(first)
}

/// The first line of `path`, without its line ending.
fn read_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    Ok(line.to_string())
}
