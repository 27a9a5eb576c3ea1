//! Repository lifecycle and safety, proven on the real binary, process by process: backups and
//! prunes killed at random moments (`crash`), several processes on one repository at once
//! (`concurrency`), a file system that fills up (`disk_full`), `init` at a relative location
//! (`init`). `support` holds what they share.

mod concurrency;
mod crash;
mod disk_full;
mod init;
mod support;
