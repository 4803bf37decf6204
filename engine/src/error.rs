//! What went wrong and how a connection ended, as values rather than
//! strings, so that failover can tell a refusing origin from a dead one and
//! /metrics can count connection ends by kind.

use std::fmt;

/// Where a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The peer we serve: bad input, protocol violation, I/O on its socket.
    Client,
    /// A server we connect to (origin, forward destination, coworker).
    Upstream,
    /// This process: a bug or a resource it could not get.
    Internal,
}

/// Whether another server can do what this one could not: what failover
/// acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Trying elsewhere cannot help.
    No,
    /// The server answered and refused this stream: it is healthy and keeps
    /// its other streams; another may have this one.
    Elsewhere,
    /// The server is unreachable or broke the protocol: try another and
    /// avoid this one for a while.
    ElsewhereAvoidThis,
}

/// An engine failure: where it came from, whether retrying elsewhere can
/// help, and what happened in words for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    source: Source,
    retry: Retry,
    message: String,
}

impl Error {
    fn new(source: Source, retry: Retry, message: impl Into<String>) -> Error {
        Error {
            source,
            retry,
            message: message.into(),
        }
    }

    /// The peer we serve failed or misbehaved.
    pub fn client(message: impl Into<String>) -> Error {
        Error::new(Source::Client, Retry::No, message)
    }

    /// An upstream could not be reached or broke the protocol.
    pub fn upstream_down(message: impl Into<String>) -> Error {
        Error::new(Source::Upstream, Retry::ElsewhereAvoidThis, message)
    }

    /// An upstream answered and refused the stream (not found, denied).
    pub fn upstream_refused(message: impl Into<String>) -> Error {
        Error::new(Source::Upstream, Retry::Elsewhere, message)
    }

    /// This process could not do it.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(Source::Internal, Retry::No, message)
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// Whether the server that failed should be skipped for a while
    /// (`origin_retry_ms`): only when it, not the stream, is the problem.
    pub fn avoid_server(&self) -> bool {
        self.retry == Retry::ElsewhereAvoidThis
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a connection ended, by kind; the label it is counted under in
/// /metrics (`ringcast_connections_closed_total{reason=...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    PeerLeft,
    Timeout,
    Refused,
    Redirected,
    HandedOff,
    Kicked,
    NoPublisher,
    Done,
    ClientError,
    UpstreamError,
    InternalError,
}

impl CloseKind {
    /// Every kind, in the order of their counters.
    pub const ALL: [CloseKind; 11] = [
        CloseKind::PeerLeft,
        CloseKind::Timeout,
        CloseKind::Refused,
        CloseKind::Redirected,
        CloseKind::HandedOff,
        CloseKind::Kicked,
        CloseKind::NoPublisher,
        CloseKind::Done,
        CloseKind::ClientError,
        CloseKind::UpstreamError,
        CloseKind::InternalError,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseKind::PeerLeft => "peer_left",
            CloseKind::Timeout => "timeout",
            CloseKind::Refused => "refused",
            CloseKind::Redirected => "redirected",
            CloseKind::HandedOff => "handed_off",
            CloseKind::Kicked => "kicked",
            CloseKind::NoPublisher => "no_publisher",
            CloseKind::Done => "done",
            CloseKind::ClientError => "client_error",
            CloseKind::UpstreamError => "upstream_error",
            CloseKind::InternalError => "internal_error",
        }
    }

    /// Position in [`CloseKind::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a connection ended, with the detail for its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// The peer closed or reset the connection: an ordinary departure.
    PeerLeft(String),
    /// The peer did not finish a phase (handshake, request, idle, publish)
    /// in time.
    Timeout(String),
    /// A connect, publish or play was refused (rules, hooks, bad name,
    /// stream busy).
    Refused(String),
    /// The client was sent to the server that holds its stream.
    Redirected(String),
    /// A publisher moved to the shard owning its stream; it lives on there.
    HandedOff(String),
    /// Disconnected by the API or by the slow-consumer policy.
    Kicked(String),
    /// A player's stream had no publisher for its unpublish timeout.
    NoPublisher(String),
    /// Served to its natural end (requests answered).
    Done(String),
    Failed(Error),
}

impl Close {
    pub fn kind(&self) -> CloseKind {
        match self {
            Close::PeerLeft(_) => CloseKind::PeerLeft,
            Close::Timeout(_) => CloseKind::Timeout,
            Close::Refused(_) => CloseKind::Refused,
            Close::Redirected(_) => CloseKind::Redirected,
            Close::HandedOff(_) => CloseKind::HandedOff,
            Close::Kicked(_) => CloseKind::Kicked,
            Close::NoPublisher(_) => CloseKind::NoPublisher,
            Close::Done(_) => CloseKind::Done,
            Close::Failed(e) => match e.source() {
                Source::Client => CloseKind::ClientError,
                Source::Upstream => CloseKind::UpstreamError,
                Source::Internal => CloseKind::InternalError,
            },
        }
    }

    /// Whether the end deserves an operator's attention (logged as a
    /// warning): failures, timeouts, refusals and kicks.
    pub fn is_trouble(&self) -> bool {
        matches!(
            self,
            Close::Failed(_) | Close::Timeout(_) | Close::Refused(_) | Close::Kicked(_)
        )
    }

    /// A socket error: a peer that reset or hung up has left (ordinary
    /// departure); anything else is a client-side failure.
    pub fn from_io(e: &std::io::Error, op: &str) -> Close {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, TimedOut};
        match e.kind() {
            ConnectionReset | BrokenPipe | ConnectionAborted => {
                Close::PeerLeft(format!("peer left ({op}: {e})"))
            }
            TimedOut => Close::Timeout(format!("{op} timed out")),
            _ => Close::Failed(Error::client(format!("{op} error: {e}"))),
        }
    }
}

impl From<Error> for Close {
    fn from(e: Error) -> Close {
        Close::Failed(e)
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Close::PeerLeft(s)
            | Close::Timeout(s)
            | Close::Refused(s)
            | Close::Redirected(s)
            | Close::HandedOff(s)
            | Close::Kicked(s)
            | Close::NoPublisher(s)
            | Close::Done(s) => f.write_str(s),
            Close::Failed(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn kinds_are_listed_in_index_order_with_distinct_labels() {
        for (i, k) in CloseKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let mut labels: Vec<_> = CloseKind::ALL.iter().map(|k| k.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CloseKind::ALL.len());
    }

    #[test]
    fn only_a_broken_upstream_is_avoided() {
        let refused = Error::upstream_refused("stream not found");
        assert_eq!(refused.retry, Retry::Elsewhere);
        assert!(!refused.avoid_server());
        let down = Error::upstream_down("connection refused");
        assert_eq!(down.retry, Retry::ElsewhereAvoidThis);
        assert!(down.avoid_server());
        let client = Error::client("bad chunk");
        assert_eq!(client.retry, Retry::No);
        assert!(!client.avoid_server());
        assert_eq!(Close::from(down).kind(), CloseKind::UpstreamError);
        assert_eq!(Close::from(client).kind(), CloseKind::ClientError);
    }

    #[test]
    fn socket_errors_are_departures_timeouts_or_failures() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(Close::from_io(&reset, "read").kind(), CloseKind::PeerLeft);
        assert!(!Close::from_io(&reset, "read").is_trouble());
        let slow = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(Close::from_io(&slow, "write").kind(), CloseKind::Timeout);
        let other = io::Error::from(io::ErrorKind::InvalidData);
        assert_eq!(
            Close::from_io(&other, "read").kind(),
            CloseKind::ClientError
        );
        assert!(Close::from_io(&other, "read").is_trouble());
    }
}
