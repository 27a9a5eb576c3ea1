//! `init`: create a repository (encrypted unless `--no-encryption`), chunked with FastCDC at the
//! default sizes or those of `--chunker fastcdc:MIN,AVG,MAX`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use respaldo::{ChunkerParams, ChunkingSpec, InitOptions, Repository};
use serde_json::json;

use crate::args::{Global, InitArgs};
use crate::output::{self, Ui};
use crate::password;

/// Runs `init`.
pub fn run(global: &Global, ui: &Ui, args: &InitArgs) -> Result<ExitCode> {
    let location = super::location(global)?;
    let cache = super::cache_dir()?;
    let password = if args.no_encryption {
        None
    } else {
        Some(password::for_init(global)?)
    };
    let kdf = args.kdf.params();
    let options = InitOptions {
        password,
        kdf,
        chunker: args.chunker.unwrap_or_default(),
        format_major: args.format_version,
        ..InitOptions::default()
    };
    let repo = Repository::init_at(&location, &options, &cache)?;
    let config = repo.store().config();
    let id = config.repository_id_hex();
    let encrypted = config.is_encrypted();
    // As stored in the config; the seed (derived from the key when encrypted) is not shown.
    let chunking = &config.chunker;
    let spec = ChunkingSpec::FastCdc(ChunkerParams {
        min_size: chunking.min_size,
        avg_size: chunking.avg_size,
        max_size: chunking.max_size,
        normalization: chunking.normalization,
        seed: 0,
    });

    let mut out = output::stdout();
    if ui.json {
        output::write_json(
            &mut out,
            &json!({
                "message_type": "initialized",
                "id": id,
                "repository": repo.location(),
                "encrypted": encrypted,
                "format_version": repo.store().format_major(),
                "kdf": encrypted.then(|| super::key::kdf_json(&kdf)),
                "chunker": {
                    "spec": spec.to_string(),
                    "min_size": chunking.min_size,
                    "avg_size": chunking.avg_size,
                    "max_size": chunking.max_size,
                    "normalization": chunking.normalization,
                },
            }),
        )?;
    } else if !ui.quiet {
        writeln!(
            out,
            "created respaldo repository {} at {}",
            output::short_id(&id),
            repo.location()
        )?;
        writeln!(out, "format version: {}", repo.store().format_major())?;
        writeln!(out, "chunking: {spec}")?;
        if encrypted {
            writeln!(
                out,
                "key derivation: Argon2id, {}",
                super::key::kdf_text(&kdf)
            )?;
            writeln!(
                out,
                "\nThe password is the only way into this repository: lose it and the data is lost."
            )?;
        } else {
            writeln!(
                out,
                "\nThe repository is not encrypted: anyone who can read it can read the data."
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
