//! Sans-IO RTMP client: drives handshake → connect → createStream →
//! publish or play against any RTMP server, for edge pulls, forwarders, the
//! load tool and tests.
//!
//! Like [`ServerSession`](crate::rtmp::server::ServerSession) it never
//! touches a socket: the caller feeds received bytes to
//! [`ClientSession::on_bytes`], writes what lands in `out`, and reacts to
//! [`ClientEvent`]s.

use std::fmt;

use bytes::BytesMut;

use crate::rtmp::amf0::Amf0Value;
use crate::rtmp::chunk::{self, MessageHeader, RtmpMessage};
use crate::rtmp::handshake::{ClientHandshake, ThreadRandom};
use crate::rtmp::message::{self, csid, msg_type, Command, Message, UserControl};
use crate::rtmp::session::{
    as_u32, clamp_out_chunk, code, command, media_parts, redirect_target, Link, Opening, Random,
    SessionError, NULL, RELAY_PROPERTY,
};

/// The parts of an `rtmp://` URL a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address to connect to; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Application path (may span several segments, e.g. `live/sub`). In
    /// the SRS form `rtmp://host/app?vhost=x/stream` the query stays on the
    /// app, where servers look for it.
    pub app: String,
    /// Stream name including any `?query` (tokens travel there).
    pub stream: String,
    /// `rtmp://host[:port]/app`, with the authority as written in the URL,
    /// since servers derive the vhost from it.
    pub tc_url: String,
}

/// Why a string is not a usable `rtmp://host[:port]/app/stream` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    NotRtmp,
    BadHost,
    BadPort,
    MissingApp,
    MissingStream,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::NotRtmp => "URL does not start with rtmp://",
            UrlError::BadHost => "URL has no valid host",
            UrlError::BadPort => "URL has an invalid port",
            UrlError::MissingApp => "URL has no application",
            UrlError::MissingStream => "URL has no stream name",
        })
    }
}

impl std::error::Error for UrlError {}

/// The RTMP port when the URL names none.
const DEFAULT_PORT: u16 = 1935;

fn parse_authority(authority: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(UrlError::BadHost)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::BadHost)?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err(UrlError::BadHost),
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['/', '?', '@', ' ']) {
        return Err(UrlError::BadHost);
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err(UrlError::BadPort),
        },
    };
    Ok((host.to_owned(), port))
}

/// Parses `rtmp://host[:port]/app[/...]/stream[?query]` (default port
/// 1935, IPv6 as `[::1]`). The last path segment is the stream, everything
/// before it the app.
pub fn parse_rtmp_url(url: &str) -> Result<RtmpUrl, UrlError> {
    let scheme = url.get(..7).ok_or(UrlError::NotRtmp)?;
    if !scheme.eq_ignore_ascii_case("rtmp://") {
        return Err(UrlError::NotRtmp);
    }
    let rest = url.get(7..).unwrap_or_default();
    let (authority, path) = rest.split_once('/').ok_or(UrlError::MissingApp)?;
    let (host, port) = parse_authority(authority)?;
    let (path_part, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let (app, stream) = match (path_part.rsplit_once('/'), query) {
        (Some((app, name)), None) => (app.to_owned(), name.to_owned()),
        (Some((app, name)), Some(q)) => (app.to_owned(), format!("{name}?{q}")),
        (None, Some(q)) => {
            let (app_query, name) = q.rsplit_once('/').ok_or(UrlError::MissingStream)?;
            (format!("{path_part}?{app_query}"), name.to_owned())
        }
        (None, None) => return Err(UrlError::MissingStream),
    };
    if app.is_empty() || app.starts_with('?') {
        return Err(UrlError::MissingApp);
    }
    if stream.is_empty() || stream.starts_with('?') {
        return Err(UrlError::MissingStream);
    }
    Ok(RtmpUrl {
        tc_url: format!("rtmp://{authority}/{app}"),
        host,
        port,
        app,
        stream,
    })
}

/// Which side of a stream the client takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    Play,
    Publish,
}

/// Everything a client connection needs to know up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub url: RtmpUrl,
    pub mode: ClientMode,
    /// Our outgoing chunk size, e.g. 60000; clamped to 128..=65536, the
    /// range every known server accepts.
    pub chunk_size: u32,
    /// Digest (Flash-style) handshake instead of the simple one; some CDNs
    /// insist on it.
    pub complex_handshake: bool,
    /// Says in `connect` that this player relays the stream (an edge's
    /// pull, see [`RELAY_PROPERTY`]); other servers ignore the property.
    pub relay: bool,
}

/// Something the caller should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// NetStream.Play.Start or NetStream.Publish.Start received.
    Ready,
    /// Audio, video or AMF0 data received while playing (AMF3 data is
    /// converted to type 18, aggregates split up).
    Media(RtmpMessage),
    /// Every onStatus, for logging and for codes the session does not act on.
    Status {
        level: String,
        code: String,
        description: String,
    },
    /// Connect refused with an RTMP 302 (`ex.code` 302).
    Redirect {
        tc_url: String,
        full_url: Option<String>,
    },
    /// connect, createStream, publish or play refused.
    Rejected { description: String },
    /// NetStream.Play.UnpublishNotify or StreamEOF: the source went away
    /// (reported once until it comes back).
    Unpublished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connecting,
    CreatingStream,
    /// `publish` or `play` sent, awaiting its onStatus.
    Starting,
    Ready,
    /// Refused or redirected; the caller closes the connection.
    Failed,
    Closed,
}

/// Buffer length a player announces, as FFmpeg does.
const PLAY_BUFFER_MS: u32 = 3000;
/// `start` argument of `play`: live if there is one, else recorded.
const PLAY_START_ANY: f64 = -2.0;

/// One client-side RTMP connection.
#[derive(Debug)]
pub struct ClientSession {
    cfg: ClientConfig,
    /// `Some` until the handshake completes.
    handshake: Option<Opening<ClientHandshake>>,
    link: Link,
    phase: Phase,
    /// Last transaction id used.
    tx: f64,
    connect_tx: f64,
    create_tx: f64,
    stream_id: Option<u32>,
    /// Whether Unpublished was reported since the source last (re)started.
    unpublished: bool,
}

impl ClientSession {
    /// A session for a freshly opened connection; call
    /// [`start`](Self::start) next.
    pub fn new(cfg: ClientConfig) -> Self {
        Self::with_random(cfg, Box::new(ThreadRandom))
    }

    /// [`new`](Self::new) with the handshake's random bytes drawn from
    /// `random`, so a test with a seeded generator sends the same bytes on
    /// every run.
    pub fn with_random(cfg: ClientConfig, random: Random) -> Self {
        let cfg = ClientConfig {
            chunk_size: clamp_out_chunk(cfg.chunk_size),
            ..cfg
        };
        ClientSession {
            handshake: Some(Opening::new(
                ClientHandshake::new(cfg.complex_handshake),
                random,
            )),
            cfg,
            link: Link::new(),
            phase: Phase::Handshake,
            tx: 0.0,
            connect_tx: 0.0,
            create_tx: 0.0,
            stream_id: None,
            unpublished: false,
        }
    }

    /// Writes C0+C1; call once, right after the TCP connection is up.
    pub fn start(&mut self, out: &mut BytesMut) {
        if let Some(opening) = &mut self.handshake {
            let mut c0c1 = Vec::new();
            opening.handshake.start(&mut c0c1, &mut *opening.random);
            out.extend_from_slice(&c0c1);
        }
    }

    /// Feeds received bytes: finishes the handshake, then runs connect →
    /// (publish: releaseStream, FCPublish, createStream, publish) or
    /// (play: createStream, play, buffer length), answering pings and
    /// acknowledging as the server asks.
    pub fn on_bytes(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), SessionError> {
        if let Some(opening) = &mut self.handshake {
            if !opening.step(input, out)? {
                return Ok(());
            }
            self.handshake = None;
            self.send_connect(out);
        }
        while let Some(msg) = self.link.receive(input)? {
            self.handle(msg, out, events)?;
            self.link.acknowledge(out);
        }
        Ok(())
    }

    /// Whether publish/play started (the [`ClientEvent::Ready`] state), i.e.
    /// whether [`send_media`](Self::send_media) will send.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// The message stream id the server gave us, once createStream answered.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Publish mode, after Ready: encodes one media/data message on the
    /// right csid with the publish stream id. Does nothing otherwise (check
    /// [`is_ready`](Self::is_ready)), nor for payloads beyond the 24-bit
    /// message length.
    pub fn send_media(&mut self, type_id: u8, timestamp: u32, payload: &[u8], out: &mut BytesMut) {
        let Some(stream_id) = self.stream_id else {
            return;
        };
        if self.phase != Phase::Ready
            || self.cfg.mode != ClientMode::Publish
            || payload.len() > chunk::MAX_MESSAGE_SIZE as usize
        {
            return;
        }
        let cs = match type_id {
            msg_type::AUDIO => csid::AUDIO,
            msg_type::VIDEO => csid::VIDEO,
            _ => csid::STREAM,
        };
        let header = MessageHeader {
            csid: cs,
            timestamp,
            type_id,
            stream_id,
        };
        chunk::encode_message(&header, payload, self.link.out_chunk(), out);
    }

    /// Ends the stream politely: FCUnpublish (when publishing) and
    /// deleteStream. The caller then closes the connection.
    pub fn close(&mut self, out: &mut BytesMut) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        let Some(id) = self.stream_id else {
            return;
        };
        if self.cfg.mode == ClientMode::Publish {
            let name = Amf0Value::string(self.cfg.url.stream.as_str());
            let tx = self.next_tx();
            self.write(
                csid::COMMAND,
                0,
                &command("FCUnpublish", tx, NULL, vec![name]),
                out,
            );
        }
        let tx = self.next_tx();
        let m = command(
            "deleteStream",
            tx,
            NULL,
            vec![Amf0Value::Number(f64::from(id))],
        );
        self.write(csid::COMMAND, 0, &m, out);
    }

    fn next_tx(&mut self) -> f64 {
        self.tx += 1.0;
        self.tx
    }

    fn write(&self, cs: u32, stream_id: u32, m: &Message, out: &mut BytesMut) {
        self.link.write(cs, stream_id, m, out);
    }

    fn send_connect(&mut self, out: &mut BytesMut) {
        self.link.set_out_chunk(self.cfg.chunk_size, out);
        let url = &self.cfg.url;
        let s = |v: &str| Amf0Value::string(v);
        // Field sets as FFmpeg sends them, which every server accepts.
        let object = match self.cfg.mode {
            ClientMode::Publish => Amf0Value::object([
                ("app", s(&url.app)),
                ("type", s("nonprivate")),
                ("flashVer", s("FMLE/3.0 (compatible; ringcast)")),
                ("tcUrl", s(&url.tc_url)),
            ]),
            ClientMode::Play => Amf0Value::object([
                ("app", s(&url.app)),
                ("flashVer", s("LNX 9,0,124,2")),
                ("tcUrl", s(&url.tc_url)),
                ("fpad", Amf0Value::Boolean(false)),
                ("capabilities", Amf0Value::Number(15.0)),
                ("audioCodecs", Amf0Value::Number(4071.0)),
                ("videoCodecs", Amf0Value::Number(252.0)),
                ("videoFunction", Amf0Value::Number(1.0)),
            ]),
        };
        let object = match object {
            Amf0Value::Object(mut props) if self.cfg.relay => {
                props.push((RELAY_PROPERTY.to_owned(), Amf0Value::Boolean(true)));
                Amf0Value::Object(props)
            }
            other => other,
        };
        self.connect_tx = self.next_tx();
        let m = command("connect", self.connect_tx, object, vec![]);
        self.write(csid::COMMAND, 0, &m, out);
        self.phase = Phase::Connecting;
    }

    fn handle(
        &mut self,
        msg: RtmpMessage,
        out: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), SessionError> {
        let ours = |id: u32| self.stream_id == Some(id);
        let Some(parsed) = self.link.on_control(message::parse(&msg)?, out)? else {
            return Ok(());
        };
        match parsed {
            Message::UserControl(UserControl::StreamBegin(id)) if ours(id) => {
                self.unpublished = false
            }
            Message::UserControl(UserControl::StreamEof(id)) if ours(id) => {
                self.source_gone(events)
            }
            Message::Command(c) => self.on_command(c, out, events)?,
            parsed @ (Message::Audio(_)
            | Message::Video(_)
            | Message::Data(_)
            | Message::Aggregate(_)) => {
                if self.cfg.mode == ClientMode::Play {
                    media_parts(msg, parsed, |m| events.push(ClientEvent::Media(m)))?;
                }
            }
            // Protocol control the link applied, and what needs no answer.
            Message::SetChunkSize(_)
            | Message::Abort(_)
            | Message::WindowAckSize(_)
            | Message::Ack(_)
            | Message::SetPeerBandwidth { .. }
            | Message::UserControl(_)
            | Message::Unknown { .. } => {}
        }
        Ok(())
    }

    fn source_gone(&mut self, events: &mut Vec<ClientEvent>) {
        if self.phase == Phase::Ready && !self.unpublished {
            self.unpublished = true;
            events.push(ClientEvent::Unpublished);
        }
    }

    fn fail(&mut self, event: ClientEvent, events: &mut Vec<ClientEvent>) {
        self.phase = Phase::Failed;
        events.push(event);
    }

    fn on_command(
        &mut self,
        c: Command,
        out: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), SessionError> {
        let info = c.args.first().unwrap_or(&NULL);
        let text = |key: &str| {
            info.get(key)
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let tx = c.transaction_id;
        match c.name.as_str() {
            "_result" if self.phase == Phase::Connecting && tx == self.connect_tx => {
                self.after_connect(out)
            }
            "_result" if self.phase == Phase::CreatingStream && tx == self.create_tx => {
                let id = c
                    .args
                    .iter()
                    .find_map(Amf0Value::as_f64)
                    .and_then(as_u32)
                    .ok_or_else(|| {
                        SessionError::Protocol("createStream result without a stream id".into())
                    })?;
                self.start_stream(id, out);
            }
            "_error" if self.phase == Phase::Connecting && tx == self.connect_tx => {
                let event = refusal(info);
                self.fail(event, events);
            }
            "_error" if self.phase == Phase::CreatingStream && tx == self.create_tx => {
                let description = text("description");
                self.fail(ClientEvent::Rejected { description }, events);
            }
            "onStatus" => {
                let (level, code, description) = (text("level"), text("code"), text("description"));
                events.push(ClientEvent::Status {
                    level: level.clone(),
                    code: code.clone(),
                    description: description.clone(),
                });
                self.on_status(info, &level, &code, description, events);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_status(
        &mut self,
        info: &Amf0Value,
        level: &str,
        code: &str,
        description: String,
        events: &mut Vec<ClientEvent>,
    ) {
        let start_code = match self.cfg.mode {
            ClientMode::Publish => code::PUBLISH_START,
            ClientMode::Play => code::PLAY_START,
        };
        match (self.phase, code) {
            // SRS sends its RTMP 302 as onStatus rather than _error.
            (Phase::Connecting | Phase::Starting, code::CONNECT_REJECTED) => {
                let event = refusal(info);
                self.fail(event, events);
            }
            (Phase::Starting, c) if c == start_code => {
                self.phase = Phase::Ready;
                self.unpublished = false;
                events.push(ClientEvent::Ready);
            }
            (_, code::PLAY_UNPUBLISH_NOTIFY) => self.source_gone(events),
            (_, code::PLAY_PUBLISH_NOTIFY) => self.unpublished = false,
            (Phase::Connecting | Phase::CreatingStream | Phase::Starting, _)
                if level == "error" =>
            {
                self.fail(ClientEvent::Rejected { description }, events)
            }
            _ => {}
        }
    }

    fn after_connect(&mut self, out: &mut BytesMut) {
        if self.cfg.mode == ClientMode::Publish {
            let name = Amf0Value::string(self.cfg.url.stream.as_str());
            for cmd in ["releaseStream", "FCPublish"] {
                let tx = self.next_tx();
                self.write(
                    csid::COMMAND,
                    0,
                    &command(cmd, tx, NULL, vec![name.clone()]),
                    out,
                );
            }
        }
        self.create_tx = self.next_tx();
        self.write(
            csid::COMMAND,
            0,
            &command("createStream", self.create_tx, NULL, vec![]),
            out,
        );
        self.phase = Phase::CreatingStream;
    }

    fn start_stream(&mut self, id: u32, out: &mut BytesMut) {
        self.stream_id = Some(id);
        self.phase = Phase::Starting;
        let name = Amf0Value::string(self.cfg.url.stream.as_str());
        let tx = self.next_tx();
        match self.cfg.mode {
            ClientMode::Publish => {
                let m = command("publish", tx, NULL, vec![name, Amf0Value::string("live")]);
                self.write(csid::STREAM, id, &m, out);
            }
            ClientMode::Play => {
                let m = command(
                    "play",
                    tx,
                    NULL,
                    vec![name, Amf0Value::Number(PLAY_START_ANY)],
                );
                self.write(csid::STREAM, id, &m, out);
                let buffer = UserControl::SetBufferLength {
                    stream_id: id,
                    millis: PLAY_BUFFER_MS,
                };
                self.link.control(Message::UserControl(buffer), out);
            }
        }
    }
}

/// The event for a refused connect: a redirect when the info object
/// carries an RTMP 302, else a rejection.
fn refusal(info: &Amf0Value) -> ClientEvent {
    match redirect_target(info) {
        Some((tc_url, full_url)) => ClientEvent::Redirect { tc_url, full_url },
        None => ClientEvent::Rejected {
            description: info
                .get("description")
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::ChunkDecoder;
    use crate::rtmp::handshake::ServerHandshake;
    use crate::rtmp::pair::{config, seeded, Answer, Pair, SEED};
    use crate::rtmp::server::{ServerConfig, ServerEvent};
    use crate::rtmp::session::write_message;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn url(s: &str) -> RtmpUrl {
        parse_rtmp_url(s).unwrap()
    }

    #[test]
    fn url_forms() {
        assert_eq!(
            url("rtmp://example.com/live/cam"),
            RtmpUrl {
                host: "example.com".into(),
                port: 1935,
                app: "live".into(),
                stream: "cam".into(),
                tc_url: "rtmp://example.com/live".into(),
            }
        );
        let u = url("RTMP://10.0.0.1:19350/live/sub/cam?token=a/b&x=1");
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.1", 19350));
        assert_eq!(
            (u.app.as_str(), u.stream.as_str()),
            ("live/sub", "cam?token=a/b&x=1")
        );
        assert_eq!(u.tc_url, "rtmp://10.0.0.1:19350/live/sub");
        let u = url("rtmp://[::1]:1936/live/cam");
        assert_eq!((u.host.as_str(), u.port), ("::1", 1936));
        assert_eq!(u.tc_url, "rtmp://[::1]:1936/live");
        assert_eq!(url("rtmp://[fe80::1]/a/b").port, 1935);
        let u = url("rtmp://h/live?vhost=v/cam");
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("live?vhost=v", "cam"));
        assert_eq!(u.tc_url, "rtmp://h/live?vhost=v");
    }

    #[test]
    fn url_errors() {
        for (s, e) in [
            ("http://h/a/b", UrlError::NotRtmp),
            ("rtmp:/", UrlError::NotRtmp),
            ("rtmp://h", UrlError::MissingApp),
            ("rtmp://h/live", UrlError::MissingStream),
            ("rtmp://h/live/", UrlError::MissingStream),
            ("rtmp://h/live/?x=1", UrlError::MissingStream),
            ("rtmp://h//cam", UrlError::MissingApp),
            ("rtmp:///live/cam", UrlError::BadHost),
            ("rtmp://h:0/live/cam", UrlError::BadPort),
            ("rtmp://h:99999/live/cam", UrlError::BadPort),
            ("rtmp://h:x/live/cam", UrlError::BadPort),
            ("rtmp://::1/live/cam", UrlError::BadHost),
            ("rtmp://[::1/live/cam", UrlError::BadHost),
            ("rtmp://[::1]x/live/cam", UrlError::BadHost),
            ("rtmp://u@h/live/cam", UrlError::BadHost),
        ] {
            assert_eq!(parse_rtmp_url(s), Err(e), "{s}");
        }
    }

    fn frames(n: usize) -> Vec<(u8, u32, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let type_id = [msg_type::VIDEO, msg_type::AUDIO, msg_type::DATA_AMF0][i % 3];
                let len = [1, 5000, 70_000, 130, 0x1_0000][i % 5];
                let body = (0..len).map(|j| (i * 31 + j) as u8).collect();
                // Includes timestamps past the 24-bit extended marker.
                (
                    type_id,
                    (i as u32) * 40 + if i > 6 { 0xff_ff00 } else { 0 },
                    body,
                )
            })
            .collect()
    }

    /// Compares media lists without printing megabytes on failure.
    fn assert_same(got: &[(u8, u32, Vec<u8>)], want: &[(u8, u32, Vec<u8>)]) {
        let summary = |v: &[(u8, u32, Vec<u8>)]| -> Vec<(u8, u32, usize)> {
            v.iter().map(|(t, ts, b)| (*t, *ts, b.len())).collect()
        };
        assert_eq!(summary(got), summary(want));
        assert!(got == want, "payloads differ");
    }

    fn publish_loop(splits: Vec<usize>) {
        let mut p = Pair::new(ClientMode::Publish, splits);
        p.run();
        assert!(p.client.is_ready());
        assert_eq!(p.client.stream_id(), Some(1));
        assert!(matches!(
            &p.sev[..2],
            [ServerEvent::Connect(i), ServerEvent::Publish { stream_id: 1, name, kind }]
                if i.app == "live" && i.tc_url == "rtmp://127.0.0.1/live" && name == "cam?k=1" && kind == "live"
        ));
        assert!(p.cev.contains(&ClientEvent::Ready));
        let sent = frames(12);
        for (t, ts, body) in &sent {
            p.client.send_media(*t, *ts, body, &mut p.to_server);
        }
        p.run();
        assert_same(&p.media_events(), &sent);
        p.client.close(&mut p.to_server);
        p.run();
        assert_eq!(p.sev.last(), Some(&ServerEvent::Unpublish { stream_id: 1 }));
        assert_eq!(
            p.sev
                .iter()
                .filter(|e| matches!(e, ServerEvent::Unpublish { .. }))
                .count(),
            1
        );
    }

    fn play_loop(splits: Vec<usize>) {
        let mut p = Pair::new(ClientMode::Play, splits);
        p.run();
        assert!(p.client.is_ready());
        assert!(matches!(
            &p.sev[..2],
            [ServerEvent::Connect(_), ServerEvent::Play { stream_id: 1, name, start }]
                if name == "cam?k=1" && *start == -2.0
        ));
        let codes: Vec<_> = p
            .cev
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Status { code, .. } => Some(code.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(codes, ["NetStream.Play.Reset", "NetStream.Play.Start"]);
        // |RtmpSampleAccess is a data message.
        assert_eq!(p.client_media().len(), 1);
        p.cev.clear();
        let sent = frames(12);
        for (t, ts, body) in &sent {
            p.engine_media(*t, *ts, &Bytes::from(body.clone()));
        }
        p.run();
        assert_same(&p.client_media(), &sent);
        p.client.close(&mut p.to_server);
        p.run();
        assert_eq!(
            p.sev.last(),
            Some(&ServerEvent::StreamClosed { stream_id: 1 })
        );
    }

    #[test]
    fn publish_loop_whole_writes() {
        publish_loop(vec![]);
    }

    #[test]
    fn play_loop_whole_writes() {
        play_loop(vec![]);
    }

    #[test]
    fn publish_loop_byte_by_byte_start() {
        publish_loop(vec![1, 1, 1, 7, 3000, 1]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn publish_loop_random_splits(splits in proptest::collection::vec(1usize..5000, 1..16)) {
            publish_loop(splits);
        }

        #[test]
        fn play_loop_random_splits(splits in proptest::collection::vec(1usize..5000, 1..16)) {
            play_loop(splits);
        }
    }

    #[test]
    fn play_loop_complex_handshake() {
        let cfg = ClientConfig {
            complex_handshake: true,
            relay: false,
            ..config(ClientMode::Play)
        };
        let mut p = Pair::with(cfg, ServerConfig::default(), vec![700]);
        p.run();
        assert!(p.client.is_ready());
        assert!(p.server.is_handshake_done());
    }

    #[test]
    fn connect_redirect() {
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.connect = Answer::Redirect;
        p.run();
        assert_eq!(
            p.cev,
            vec![ClientEvent::Redirect {
                tc_url: "rtmp://o2:1936/live".into(),
                full_url: Some("rtmp://o2:1936/live/cam?k=1".into()),
            }]
        );
        assert!(!p.client.is_ready());
    }

    #[test]
    fn play_time_redirect_from_an_origin_cluster() {
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.stream = Answer::Redirect;
        p.run();
        assert_eq!(
            p.cev.last(),
            Some(&ClientEvent::Redirect {
                tc_url: "rtmp://o3:1937/live".into(),
                full_url: Some("rtmp://o3:1937/live/cam".into()),
            })
        );
        assert!(!p.client.is_ready());
    }

    #[test]
    fn srs_style_on_status_redirect() {
        let ex = Amf0Value::object([
            ("code", Amf0Value::Number(302.0)),
            ("redirect", Amf0Value::string("rtmp://o3/live")),
        ]);
        let mut info = crate::rtmp::session::status(
            "error",
            "NetConnection.Connect.Rejected",
            "RTMP 302 Redirect",
        );
        if let Amf0Value::Object(p) = &mut info {
            p.push(("ex".into(), ex));
        }
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.connect = Answer::Hold;
        p.run();
        write_message(
            &command("onStatus", 0.0, NULL, vec![info]),
            3,
            0,
            128,
            &mut p.to_client,
        );
        p.run();
        assert_eq!(
            p.cev.last(),
            Some(&ClientEvent::Redirect {
                tc_url: "rtmp://o3/live".into(),
                full_url: None
            })
        );
    }

    #[test]
    fn connect_rejected() {
        let mut p = Pair::new(ClientMode::Publish, vec![]);
        p.connect = Answer::Reject;
        p.run();
        assert_eq!(
            p.cev,
            vec![ClientEvent::Rejected {
                description: "go away".into()
            }]
        );
    }

    #[test]
    fn publish_and_play_rejected() {
        let mut p = Pair::new(ClientMode::Publish, vec![]);
        p.stream = Answer::Reject;
        p.run();
        assert!(!p.client.is_ready());
        assert_eq!(
            p.cev.last(),
            Some(&ClientEvent::Rejected {
                description: "already publishing".into()
            })
        );
        // Media is refused locally until Ready.
        let before = p.to_server.len();
        p.client
            .send_media(msg_type::VIDEO, 0, &[1, 2], &mut p.to_server);
        assert_eq!(p.to_server.len(), before);

        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.stream = Answer::Reject;
        p.run();
        assert!(
            matches!(p.cev.last(), Some(ClientEvent::Rejected { description }) if description == "no such stream")
        );
    }

    #[test]
    fn unpublish_and_republish_notify() {
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.run();
        p.cev.clear();
        p.server.unpublish_notify(1, &mut p.to_client);
        p.run();
        // StreamEOF and UnpublishNotify together report once.
        assert_eq!(
            p.cev
                .iter()
                .filter(|e| **e == ClientEvent::Unpublished)
                .count(),
            1
        );
        p.server.publish_notify(1, &mut p.to_client);
        p.server.unpublish_notify(1, &mut p.to_client);
        p.run();
        assert_eq!(
            p.cev
                .iter()
                .filter(|e| **e == ClientEvent::Unpublished)
                .count(),
            2
        );
    }

    /// Decodes the client's output after the handshake.
    fn client_messages(p: &Pair) -> Vec<RtmpMessage> {
        let mut buf = BytesMut::from(&p.client_sent[1537 + 1536..]);
        let mut d = ChunkDecoder::new();
        let mut v = Vec::new();
        while let Some(m) = d.decode(&mut buf).unwrap() {
            if let Ok(Message::SetChunkSize(n)) = message::parse(&m) {
                d.set_chunk_size(n).unwrap();
            }
            v.push(m);
        }
        v
    }

    #[test]
    fn client_command_sequence() {
        let mut p = Pair::new(ClientMode::Publish, vec![]);
        p.run();
        let names: Vec<String> = client_messages(&p)
            .iter()
            .map(|m| match message::parse(m).unwrap() {
                Message::Command(c) => c.name,
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "SetChunkSize(4096)",
                "connect",
                "releaseStream",
                "FCPublish",
                "createStream",
                "publish"
            ]
        );
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.run();
        let msgs: Vec<Message> = client_messages(&p)
            .iter()
            .map(|m| message::parse(m).unwrap())
            .collect();
        assert!(
            msgs.contains(&Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000
            }))
        );
    }

    #[test]
    fn client_answers_ping_and_acknowledges() {
        let scfg = ServerConfig {
            window_ack_size: 10_000,
            ..ServerConfig::default()
        };
        let mut p = Pair::with(config(ClientMode::Play), scfg, vec![]);
        p.run();
        write_message(
            &Message::UserControl(UserControl::PingRequest(77)),
            2,
            0,
            60000,
            &mut p.to_client,
        );
        let payload = Bytes::from(vec![9u8; 4000]);
        for ts in 0..10 {
            p.engine_media(msg_type::VIDEO, ts, &payload);
        }
        p.run();
        let msgs: Vec<Message> = client_messages(&p)
            .iter()
            .map(|m| message::parse(m).unwrap())
            .collect();
        assert!(msgs.contains(&Message::UserControl(UserControl::PingResponse(77))));
        let acks: Vec<u32> = msgs
            .iter()
            .filter_map(|m| match m {
                Message::Ack(n) => Some(*n),
                _ => None,
            })
            .collect();
        // ~40 kB received with a 10 kB window.
        assert!((3..=4).contains(&acks.len()), "{acks:?}");
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 10_000));
    }

    #[test]
    fn server_chunk_size_and_results_tolerated() {
        // A createStream result with no number is a protocol error.
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.connect = Answer::Hold;
        p.run();
        p.server.accept_connect(&mut p.to_client);
        // Deliver only the connect reply; answer createStream by hand.
        let mut input = p.to_client.split();
        p.client
            .on_bytes(&mut input, &mut p.to_server, &mut p.cev)
            .unwrap();
        let mut bad = BytesMut::new();
        write_message(
            &command("_result", 2.0, NULL, vec![Amf0Value::Null]),
            3,
            0,
            60000,
            &mut bad,
        );
        let e = p.client.on_bytes(&mut bad, &mut p.to_server, &mut p.cev);
        assert!(matches!(e, Err(SessionError::Protocol(_))), "{e:?}");
    }

    #[test]
    fn create_stream_error_is_rejection() {
        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.connect = Answer::Hold;
        p.run();
        p.server.accept_connect(&mut p.to_client);
        let mut input = p.to_client.split();
        p.client
            .on_bytes(&mut input, &mut p.to_server, &mut p.cev)
            .unwrap();
        let mut err = BytesMut::new();
        let info = crate::rtmp::session::status("error", "NetConnection.Call.Failed", "no streams");
        write_message(
            &command("_error", 2.0, NULL, vec![info]),
            3,
            0,
            60000,
            &mut err,
        );
        p.client
            .on_bytes(&mut err, &mut p.to_server, &mut p.cev)
            .unwrap();
        assert_eq!(
            p.cev,
            vec![ClientEvent::Rejected {
                description: "no streams".into()
            }]
        );
    }

    #[test]
    fn client_errors() {
        let mut c = ClientSession::with_random(config(ClientMode::Play), seeded(SEED));
        let mut out = BytesMut::new();
        c.start(&mut out);
        assert_eq!(out.len(), 1537);
        let mut input = BytesMut::from(&[0xffu8; 3073][..]);
        let e = c.on_bytes(&mut input, &mut out, &mut Vec::new());
        assert!(matches!(e, Err(SessionError::Handshake(_))), "{e:?}");

        let mut p = Pair::new(ClientMode::Play, vec![]);
        p.run();
        let mut bad = BytesMut::new();
        write_message(&Message::SetChunkSize(0), 2, 0, 60000, &mut bad);
        let e = p.client.on_bytes(&mut bad, &mut p.to_server, &mut p.cev);
        assert!(matches!(e, Err(SessionError::Chunk(_))), "{e:?}");
    }

    #[test]
    fn session_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<ClientSession>();
    }

    /// A client past the handshake, fed by hand.
    fn handshaken(mode: ClientMode) -> (ClientSession, BytesMut) {
        let mut c = ClientSession::with_random(config(mode), seeded(SEED));
        let mut sh = ServerHandshake::new();
        let mut random = seeded(SEED + 1);
        let mut c_out = BytesMut::new();
        c.start(&mut c_out);
        let mut s_out = Vec::new();
        sh.process(&mut c_out, &mut s_out, &mut *random).unwrap();
        let mut input = BytesMut::from(&s_out[..]);
        c.on_bytes(&mut input, &mut c_out, &mut Vec::new()).unwrap();
        sh.process(&mut c_out, &mut Vec::new(), &mut *random)
            .unwrap();
        (c, c_out)
    }

    proptest! {
        #[test]
        fn url_parser_never_panics(s in ".{0,64}") {
            let _ = parse_rtmp_url(&s);
            let _ = parse_rtmp_url(&format!("rtmp://{s}"));
        }

        #[test]
        fn url_round_trip(host in "[a-z][a-z0-9.-]{0,20}", port in 1u16.., app in "[a-z]{1,8}(/[a-z]{1,8})?", stream in "[a-z0-9_]{1,12}(\\?[a-z=&/]{0,12})?") {
            let u = parse_rtmp_url(&format!("rtmp://{host}:{port}/{app}/{stream}")).unwrap();
            prop_assert_eq!(u.host, host.clone());
            prop_assert_eq!(u.port, port);
            prop_assert_eq!(u.app, app.clone());
            prop_assert_eq!(u.stream, stream);
            prop_assert_eq!(u.tc_url, format!("rtmp://{host}:{port}/{app}"));
        }

        #[test]
        fn arbitrary_bytes_after_handshake_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            publish in any::<bool>(),
            split in 1usize..512,
        ) {
            let mode = if publish { ClientMode::Publish } else { ClientMode::Play };
            let (mut c, mut out) = handshaken(mode);
            let mut events = Vec::new();
            for piece in data.chunks(split) {
                let mut input = BytesMut::from(piece);
                if c.on_bytes(&mut input, &mut out, &mut events).is_err() {
                    break;
                }
            }
        }
    }
}
