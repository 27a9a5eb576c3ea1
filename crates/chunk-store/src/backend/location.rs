//! Repository locations as users write them, and the backend each one opens.
//!
//! - a path: a local folder (`/srv/backup`, `./repo`);
//! - `s3:https://HOST[:PORT]/BUCKET[/PREFIX]` (or `http://`): an S3-compatible server such as
//!   Garage, Ceph RGW or MinIO, addressed path-style;
//! - `s3:BUCKET[/PREFIX]`: a bucket on AWS S3, in the region `AWS_REGION` names;
//! - `opendal:SCHEME?KEY=VALUE&...`: any other storage service of opendal built into this
//!   program (`gcs`, `azblob`, `sftp` behind the cargo features of the same names, off by
//!   default), configured with that service's options.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`), or from the profile of `~/.aws/credentials` that `AWS_PROFILE` names;
//! the region from `AWS_REGION` (default `us-east-1` for a server given by URL).

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Backend, LocalBackend, ObjectBackend, RequestPolicy};
use crate::error::{Error, Result};

/// The scheme prefix of S3 locations.
pub const S3_SCHEME: &str = "s3:";
/// The scheme prefix of locations on other opendal services.
pub const OPENDAL_SCHEME: &str = "opendal:";

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on a local (or mounted) file system.
    Local(PathBuf),
    /// A bucket (and a prefix in it) of an S3-compatible store.
    S3(S3Location),
    /// Another storage service of opendal, by its scheme and options.
    Opendal(OpendalLocation),
}

/// A repository on an opendal service other than S3 (`opendal:gcs?bucket=b&root=/x`).
#[derive(Clone, PartialEq, Eq)]
pub struct OpendalLocation {
    /// The service's scheme (`gcs`, `azblob`, `sftp`, `memory`, ...).
    pub scheme: String,
    /// The service's options, in the order given.
    pub options: Vec<(String, String)>,
}

impl fmt::Debug for OpendalLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpendalLocation({self})")
    }
}

impl fmt::Display for OpendalLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{OPENDAL_SCHEME}{}", self.scheme)?;
        for (i, (key, value)) in self.options.iter().enumerate() {
            let separator = if i == 0 { '?' } else { '&' };
            // Secrets never reach messages, events or the backup log.
            let lower = key.to_ascii_lowercase();
            let secret = ["secret", "password", "token", "credential", "key"]
                .iter()
                .any(|word| lower.contains(word))
                && lower != "key_id"
                && !lower.ends_with("_id");
            let shown = if secret { "***" } else { value.as_str() };
            write!(f, "{separator}{key}={shown}")?;
        }
        Ok(())
    }
}

impl OpendalLocation {
    fn parse(rest: &str, whole: &OsStr) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLocation {
            location: whole.to_string_lossy().into_owned(),
            reason: format!("{reason}; write opendal:SCHEME?KEY=VALUE&KEY=VALUE"),
        };
        let (scheme, query) = rest.split_once('?').unwrap_or((rest, ""));
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return Err(invalid(format!("{scheme:?} is not a service name")));
        }
        let mut options = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("option {pair:?} has no '='")))?;
            options.push((key.to_string(), value.to_string()));
        }
        Ok(Self {
            scheme: scheme.to_string(),
            options,
        })
    }

    /// A backend on this service with `policy`. Nothing is contacted yet.
    ///
    /// Errors: [`Error::RemoteSetup`] when this program was built without the service, or
    /// the options do not configure it.
    pub fn open(&self, policy: RequestPolicy) -> Result<ObjectBackend> {
        opendal::install_default();
        let operator =
            opendal::Operator::via_iter(&self.scheme, self.options.clone()).map_err(|e| {
                Error::RemoteSetup {
                    location: self.to_string(),
                    reason: if e.kind() == opendal::ErrorKind::Unsupported {
                        format!(
                            "this build of respaldo has no {} service: rebuild it with \
                         `--features {}` (gcs, azblob and sftp are available)",
                            self.scheme, self.scheme
                        )
                    } else {
                        format!("the {} service cannot be set up: {e}", self.scheme)
                    },
                }
            })?;
        ObjectBackend::new(operator, self.to_string(), policy)
    }
}

/// A repository in an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// `scheme://host[:port]` of the server; `None` for AWS S3.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The key prefix of the repository inside the bucket, without leading or trailing `/`
    /// (empty: the bucket's root).
    pub prefix: String,
}

impl Location {
    /// Reads a location as given on the command line or in a config file: `s3:...` is an S3
    /// location, `opendal:...` another storage service, anything else a local path.
    ///
    /// Errors: [`Error::InvalidLocation`] for an `s3:` location without a bucket, with an
    /// unknown URL scheme, credentials, or empty or `.`/`..` prefix segments; for an
    /// `opendal:` location without a service name or with an option without `=`.
    pub fn parse(text: &OsStr) -> Result<Self> {
        let utf8 = text.to_str();
        if let Some(rest) = utf8.and_then(|t| t.strip_prefix(S3_SCHEME)) {
            return S3Location::parse(rest, text).map(Location::S3);
        }
        if let Some(rest) = utf8.and_then(|t| t.strip_prefix(OPENDAL_SCHEME)) {
            return OpendalLocation::parse(rest, text).map(Location::Opendal);
        }
        Ok(Location::Local(PathBuf::from(text)))
    }

    /// Whether the repository is on a remote store (its index is then only cached locally).
    pub fn is_remote(&self) -> bool {
        !matches!(self, Location::Local(_))
    }

    /// The backend for this location, with time limits and retries from
    /// [`RequestPolicy::from_env`] for remote stores. Nothing is contacted yet.
    ///
    /// Errors: [`Error::InvalidSetting`] for a bad `RESPALDO_S3_*` variable,
    /// [`Error::RemoteSetup`] when the client cannot be set up (no region for AWS S3, a service
    /// this program was built without).
    pub fn open(&self) -> Result<Arc<dyn Backend>> {
        match self {
            Location::Local(path) => Ok(Arc::new(LocalBackend::new(path))),
            Location::S3(s3) => Ok(Arc::new(s3.open(RequestPolicy::from_env()?)?)),
            Location::Opendal(other) => Ok(Arc::new(other.open(RequestPolicy::from_env()?)?)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3(s3) => write!(f, "{s3}"),
            Location::Opendal(other) => write!(f, "{other}"),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{S3_SCHEME}")?;
        if let Some(endpoint) = &self.endpoint {
            write!(f, "{endpoint}/")?;
        }
        write!(f, "{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl S3Location {
    fn parse(rest: &str, whole: &OsStr) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidLocation {
            location: whole.to_string_lossy().into_owned(),
            reason: format!(
                "{reason}; write s3:https://HOST:PORT/BUCKET/PREFIX for an S3-compatible \
                 server, or s3:BUCKET/PREFIX for AWS S3"
            ),
        };
        let (endpoint, path) = match rest.split_once("://") {
            Some((scheme, after)) => {
                if scheme != "http" && scheme != "https" {
                    return Err(invalid(&format!("unknown URL scheme {scheme:?}")));
                }
                let (host, path) = after.split_once('/').unwrap_or((after, ""));
                if host.is_empty() {
                    return Err(invalid("the server's host name is missing"));
                }
                if host.contains('@') {
                    // They would show in every message, event and log row.
                    return Err(invalid(
                        "credentials do not belong in the location: give them in \
                         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    ));
                }
                (Some(format!("{scheme}://{host}")), path)
            }
            None => (None, rest),
        };
        let path = path.trim_end_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is missing"));
        }
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
        {
            return Err(invalid(&format!(
                "bucket name {bucket:?} has characters other than lower-case letters, digits, \
                 '-' and '.'"
            )));
        }
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(invalid(&format!(
                "the prefix {prefix:?} has an empty, '.' or '..' segment"
            )));
        }
        Ok(S3Location {
            endpoint,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// A backend for this bucket and prefix with `policy`, with credentials and region from
    /// the environment. Nothing is contacted yet.
    ///
    /// Errors: [`Error::RemoteSetup`] when the client cannot be set up (AWS S3 without a region).
    pub fn open(&self, policy: RequestPolicy) -> Result<ObjectBackend> {
        self.open_with(policy, None)
    }

    /// Like [`S3Location::open`], with the access key (and region) given instead of read
    /// from the environment and `~/.aws` (for programs that hold several keys at once).
    pub fn open_with(
        &self,
        policy: RequestPolicy,
        access: Option<&S3Access>,
    ) -> Result<ObjectBackend> {
        opendal::install_default();
        let region = access
            .and_then(|a| a.region.clone())
            .or_else(|| {
                std::env::var("AWS_REGION")
                    .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                    .ok()
            })
            .filter(|r| !r.is_empty());
        let mut builder = opendal::services::S3::default()
            .bucket(&self.bucket)
            .root(&format!("/{}", self.prefix));
        if let Some(access) = access {
            builder = builder
                .access_key_id(&access.access_key_id)
                .secret_access_key(&access.secret_access_key)
                .disable_config_load();
        }
        builder = match &self.endpoint {
            Some(endpoint) => {
                // A self-hosted server: path-style addressing, and no EC2 instance metadata
                // lookups (they would only delay the error when credentials are missing).
                builder
                    .endpoint(endpoint)
                    .region(region.as_deref().unwrap_or("us-east-1"))
                    .disable_ec2_metadata()
            }
            None => {
                let Some(region) = region else {
                    return Err(Error::RemoteSetup {
                        location: self.to_string(),
                        reason: "no region given for AWS S3: set AWS_REGION (for example \
                                 AWS_REGION=eu-west-1)"
                            .to_string(),
                    });
                };
                builder.region(&region).enable_virtual_host_style()
            }
        };
        let operator = opendal::Operator::new(builder).map_err(|e| Error::RemoteSetup {
            location: self.to_string(),
            reason: format!("the S3 client cannot be set up: {e}"),
        })?;
        ObjectBackend::new(operator, self.to_string(), policy)
    }
}

/// An S3 access key and the region to sign for, given by a program instead of the
/// environment.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Access {
    /// The key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// The secret (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: String,
    /// The region (`AWS_REGION`); `None`: as [`S3Location::open`] finds it.
    pub region: Option<String>,
}

impl fmt::Debug for S3Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("S3Access")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl RequestPolicy {
    /// The default policy, changed by `RESPALDO_S3_TIMEOUT` (seconds, or with a unit:
    /// `30s`, `2m`) and `RESPALDO_S3_RETRIES` (a count) when they are set.
    ///
    /// Errors: [`Error::InvalidSetting`] naming the variable when a value cannot be read.
    pub fn from_env() -> Result<Self> {
        let mut policy = RequestPolicy::default();
        if let Some(text) = env_setting("RESPALDO_S3_TIMEOUT") {
            policy.timeout = parse_duration(&text).ok_or_else(|| Error::InvalidSetting {
                name: "RESPALDO_S3_TIMEOUT",
                value: text.clone(),
                expected: "a positive number of seconds, or a duration such as 30s or 2m"
                    .to_string(),
            })?;
        }
        if let Some(text) = env_setting("RESPALDO_S3_RETRIES") {
            policy.retries = text.parse().map_err(|_| Error::InvalidSetting {
                name: "RESPALDO_S3_RETRIES",
                value: text.clone(),
                expected: "a whole number of retries, such as 5 (0: no retry)".to_string(),
            })?;
        }
        Ok(policy)
    }
}

fn env_setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `30`, `30s`, `2m`, `1h`, `500ms` → a positive duration.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds > 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Location> {
        Location::parse(OsStr::new(text))
    }

    #[test]
    fn reads_every_form() {
        assert_eq!(
            parse("/srv/repo").unwrap(),
            Location::Local(PathBuf::from("/srv/repo"))
        );
        assert_eq!(
            parse("s3:http://127.0.0.1:3900/backups/host-a/").unwrap(),
            Location::S3(S3Location {
                endpoint: Some("http://127.0.0.1:3900".into()),
                bucket: "backups".into(),
                prefix: "host-a".into(),
            })
        );
        assert_eq!(
            parse("s3:my-bucket").unwrap(),
            Location::S3(S3Location {
                endpoint: None,
                bucket: "my-bucket".into(),
                prefix: String::new(),
            })
        );
        let text = "s3:https://s3.example.net/b/x/y";
        assert_eq!(parse(text).unwrap().to_string(), text);
        assert!(parse(text).unwrap().is_remote());
        assert!(!parse("repo").unwrap().is_remote());
    }

    #[test]
    fn refuses_what_cannot_be_a_bucket() {
        for bad in [
            "s3:",
            "s3:https://",
            "s3:https://host",
            "s3:https://host/",
            "s3:ftp://host/bucket",
            "s3:Bucket_Name",
            "s3:bucket//x",
            "s3:bucket/../x",
            "s3:https://key:secret@host/bucket",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidLocation { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains("s3:BUCKET/PREFIX"), "{err}");
        }
    }

    #[test]
    fn reads_other_services_and_hides_their_secrets() {
        let location = parse("opendal:gcs?bucket=b&root=/r&credential=abc&client_id=x").unwrap();
        assert_eq!(
            location.to_string(),
            "opendal:gcs?bucket=b&root=/r&credential=***&client_id=x"
        );
        assert!(location.is_remote());
        assert!(matches!(
            parse("opendal:"),
            Err(Error::InvalidLocation { .. })
        ));
        assert!(matches!(
            parse("opendal:gcs?bucket"),
            Err(Error::InvalidLocation { .. })
        ));
    }

    #[test]
    fn a_service_not_built_in_says_which_feature_to_build_with() {
        let err = parse("opendal:sftp?endpoint=ssh://h")
            .unwrap()
            .open()
            .err()
            .unwrap();
        if cfg!(feature = "sftp") {
            return;
        }
        assert!(matches!(err, Error::RemoteSetup { .. }), "{err:?}");
        assert!(err.to_string().contains("--features sftp"), "{err}");
    }

    #[test]
    fn reads_durations() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
