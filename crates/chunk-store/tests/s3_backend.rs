//! The object-store backend against a real S3 server (Garage on loopback; see `test-s3`):
//! the same contract as every backend, plus what only a network store can do wrong.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chunk_store::{Backend, Error, FileKind, ObjectBackend, RequestPolicy, S3Access, S3Location};
use test_s3::{BUCKET, REGION, S3Server, StallProxy};

#[path = "support/conformance.rs"]
mod conformance;

fn access(server: &S3Server) -> S3Access {
    S3Access {
        access_key_id: server.access_key_id.clone(),
        secret_access_key: server.secret_access_key.clone(),
        region: Some(REGION.to_string()),
    }
}

fn backend_at(
    endpoint: String,
    prefix: &str,
    access: &S3Access,
    policy: RequestPolicy,
) -> ObjectBackend {
    S3Location {
        endpoint: Some(endpoint),
        bucket: BUCKET.to_string(),
        prefix: prefix.to_string(),
    }
    .open_with(policy, Some(access))
    .unwrap()
}

fn quick_policy() -> RequestPolicy {
    RequestPolicy {
        timeout: Duration::from_secs(2),
        retries: 1,
        ..RequestPolicy::default()
    }
}

#[test]
fn s3_backend_conforms() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let access = access(&server);
    let backend = backend_at(
        server.endpoint(),
        "conformance",
        &access,
        RequestPolicy::default(),
    );
    conformance::conformance(&backend);
    let counts = backend.request_counts();
    assert!(
        counts.put > 0 && counts.get > 0 && counts.list > 0 && counts.delete > 0,
        "{counts:?}"
    );

    conformance::concurrent_writers(Arc::new(backend_at(
        server.endpoint(),
        "concurrent/deeper",
        &access,
        RequestPolicy::default(),
    )));

    // Prefixes are separate repositories: nothing written above shows in another prefix.
    let other = backend_at(
        server.endpoint(),
        "elsewhere",
        &access,
        RequestPolicy::default(),
    );
    for kind in FileKind::ALL {
        assert!(other.list(kind).unwrap().is_empty());
    }
}

#[test]
fn large_objects_go_up_in_parts_and_come_back_whole() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let policy = RequestPolicy {
        part_size: 5 << 20,
        ..RequestPolicy::default()
    };
    let backend = backend_at(server.endpoint(), "multipart", &access(&server), policy);
    let data: Vec<u8> = (0..(11u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    backend.write(FileKind::Pack, "big", &data).unwrap();
    assert_eq!(
        backend.size(FileKind::Pack, "big").unwrap(),
        data.len() as u64
    );
    assert_eq!(backend.read(FileKind::Pack, "big").unwrap(), data);
    // A range across a part boundary.
    let start = (5u64 << 20) - 100;
    assert_eq!(
        backend
            .read_range(FileKind::Pack, "big", start, 300)
            .unwrap(),
        &data[start as usize..start as usize + 300]
    );
    assert_eq!(backend.list(FileKind::Pack).unwrap(), ["big"]);
    // The server saw one multipart upload of three parts.
    let log = server.log();
    assert!(
        log.contains("POST /respaldo/multipart/packs/big?uploads"),
        "{log}"
    );
    assert!(log.contains("packs/big?partNumber=3&"), "{log}");
    assert!(!log.contains("partNumber=4&"), "{log}");
    // An object no larger than a part is one plain PUT.
    backend
        .write(FileKind::Pack, "small", &data[..5 << 20])
        .unwrap();
    let log = server.log();
    assert!(!log.contains("packs/small?uploads"), "{log}");
    assert!(log.contains("PUT /respaldo/multipart/packs/small"), "{log}");
}

#[test]
fn errors_name_the_object_and_the_http_status() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let good = backend_at(
        server.endpoint(),
        "errors",
        &access(&server),
        quick_policy(),
    );
    good.write(FileKind::Index, "present", b"x").unwrap();

    let wrong = S3Access {
        secret_access_key: "0".repeat(64),
        ..access(&server)
    };
    let bad = backend_at(server.endpoint(), "errors", &wrong, quick_policy());
    let err = bad.read(FileKind::Index, "present").unwrap_err();
    match &err {
        Error::Remote {
            status: Some(403),
            object,
            ..
        } => {
            assert!(object.contains("index/present"), "{err}");
        }
        other => panic!("expected HTTP 403, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("HTTP 403") && text.contains("AWS_SECRET_ACCESS_KEY"),
        "{text}"
    );

    // A bucket that does not exist.
    let missing = S3Location {
        endpoint: Some(server.endpoint()),
        bucket: "no-such-bucket".to_string(),
        prefix: String::new(),
    }
    .open_with(quick_policy(), Some(&access(&server)))
    .unwrap();
    let err = missing.write(FileKind::Lock, "l1", b"x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                status: Some(404),
                ..
            }
        ),
        "{err:?}"
    );

    // A missing object is NotFound, as on every backend.
    assert!(
        good.read(FileKind::Pack, "absent")
            .unwrap_err()
            .is_not_found()
    );
}

#[test]
fn a_server_that_is_down_or_hangs_fails_within_the_time_limit() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let access = access(&server);

    // Down: the connection is refused; the error says no answer came, after the retries.
    let backend = backend_at(server.endpoint(), "down", &access, quick_policy());
    backend.write(FileKind::Snapshot, "s1", b"before").unwrap();
    server.stop();
    let started = Instant::now();
    let err = backend.read(FileKind::Snapshot, "s1").unwrap_err();
    assert!(matches!(err, Error::Remote { status: None, .. }), "{err:?}");
    assert!(
        err.to_string().contains("no answer from the server"),
        "{err}"
    );
    assert!(err.to_string().contains("snapshots/s1"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    server.resume();
    assert_eq!(backend.read(FileKind::Snapshot, "s1").unwrap(), b"before");

    // Hung: the server accepts the connection and never answers; the time limit ends it.
    let proxy = StallProxy::start(server.port());
    let through = backend_at(proxy.endpoint(), "down", &access, quick_policy());
    assert_eq!(through.read(FileKind::Snapshot, "s1").unwrap(), b"before");
    proxy.set_stalled(true);
    let started = Instant::now();
    let err = through.read(FileKind::Snapshot, "s1").unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Remote { status: None, .. }), "{err:?}");
    // Two attempts of 2 s each, with a short backoff between them.
    assert!(
        waited >= Duration::from_secs(2),
        "gave up after {waited:?}: {err}"
    );
    assert!(waited < Duration::from_secs(20), "waited {waited:?}");
    proxy.set_stalled(false);
    assert_eq!(through.read(FileKind::Snapshot, "s1").unwrap(), b"before");
}
