//! `init` at a location given as a bare relative name.

use crate::util::{Env, code, describe};

#[test]
fn init_with_a_bare_relative_repository_name() {
    let env = Env::empty();
    // Run from the environment's folder, like `respaldo init --repo repo` in a shell.
    let out = env
        .command()
        .args(["init", "--repo", "repo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(env.repo.join("config").is_file());
    env.ok(["snapshots"]);
}
