//! Who this process is, as SRS-shaped API answers and hook payloads name
//! it, and the JSON envelope (`code`, `server`, `service`, `pid`) every
//! API answer is wrapped in. Its own module so that the API, its stats
//! routes and the hooks share it without importing each other.

use serde::Serialize;
use std::sync::OnceLock;
use std::time::SystemTime;

/// This process's id in API answers and hook payloads: stable for
/// the life of the process, different across restarts of a supervisor.
pub fn server_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("vid-{}", std::process::id()))
}

/// SRS's `service` id: changes on every start, so a client polling the API
/// can tell that the server restarted even when the pid is reused.
fn service_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{:x}", nanos ^ u128::from(std::process::id()))
    })
}

fn pid() -> &'static str {
    static PID: OnceLock<String> = OnceLock::new();
    PID.get_or_init(|| std::process::id().to_string())
}

#[derive(Serialize)]
struct Envelope<T: Serialize> {
    code: i64,
    server: &'static str,
    service: &'static str,
    pid: &'static str,
    #[serde(flatten)]
    body: T,
}

/// `body` wrapped in SRS's envelope with result `code`, as JSON.
pub fn envelope<T: Serialize>(code: i64, body: T) -> String {
    let e = Envelope {
        code,
        server: server_id(),
        service: service_id(),
        pid: pid(),
        body,
    };
    serde_json::to_string(&e).unwrap_or_else(|_| format!("{{\"code\":{code}}}"))
}
