//! `ls`: the nodes of a snapshot, `ls -l` style or as a JSON array.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use respaldo::{ListedNode, NodeKind};
use serde_json::{Value, json};

use crate::args::{Global, LsArgs};
use crate::output::{self, Ui};

/// Runs `ls`.
pub fn run(global: &Global, ui: &Ui, args: &LsArgs) -> Result<ExitCode> {
    let path = args.path.as_deref().map(super::snapshot_path);
    let repo = super::open(global)?;
    let entry = super::resolve(&repo, &args.snapshot)?;
    let nodes = repo.ls(&entry, path.as_deref())?;

    let mut out = output::stdout();
    if ui.json {
        let list: Vec<Value> = nodes.iter().map(node_json).collect();
        output::write_json_pretty(&mut out, &Value::Array(list))?;
    } else {
        for listed in &nodes {
            write_line(&mut out, listed)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The `ls -l` type letter of a node.
fn kind_letter(kind: NodeKind) -> char {
    match kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
        _ => '-',
    }
}

/// One `ls -l` line; the path is written as its raw bytes, so any name comes out unchanged.
fn write_line(out: &mut impl Write, listed: &ListedNode) -> std::io::Result<()> {
    let node = &listed.node;
    let user = if node.user.is_empty() {
        node.uid.to_string()
    } else {
        node.user.clone()
    };
    let group = if node.group.is_empty() {
        node.gid.to_string()
    } else {
        node.group.clone()
    };
    write!(
        out,
        "{} {:>8} {:>8} {:>12} {} ",
        output::permissions(kind_letter(node.kind), node.mode),
        user,
        group,
        node.size,
        output::local_time(node.mtime_ns),
    )?;
    out.write_all(&listed.path)?;
    match node.kind {
        NodeKind::Symlink => {
            out.write_all(b" -> ")?;
            out.write_all(&node.link_target)?;
        }
        NodeKind::Hardlink => {
            out.write_all(b" => ")?;
            out.write_all(&node.link_target)?;
        }
        _ => {}
    }
    out.write_all(b"\n")
}

fn node_json(listed: &ListedNode) -> Value {
    let node = &listed.node;
    let mut value = json!({
        "path": String::from_utf8_lossy(&listed.path),
        "name": node.name_lossy(),
        "type": node.kind.label(),
        "size": node.size,
        "mode": node.mode,
        "permissions": output::permissions(kind_letter(node.kind), node.mode),
        "mtime": output::rfc3339(node.mtime_ns),
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "inode": node.inode,
        "links": node.links,
    });
    if !node.link_target.is_empty() {
        value["link_target"] =
            Value::String(String::from_utf8_lossy(&node.link_target).into_owned());
    }
    value
}
