//! Sans-IO RTMP server connection: the engine feeds received bytes, gets
//! [`ServerEvent`]s back, answers the decisions (connect, publish, play) by
//! calling the `accept_*` / `reject_*` methods, and writes whatever the
//! session appended to `out`.
//!
//! The session owns everything that needs no policy: the handshake, chunk
//! reassembly, protocol control (chunk size, acknowledgements, pings) and the
//! bookkeeping commands of the FMLE/FFmpeg/OBS publish sequence, so the
//! engine only sees what it has to decide about.

use bytes::{Bytes, BytesMut};

use crate::rtmp::amf0::{self, Amf0Value};
use crate::rtmp::chunk::RtmpMessage;
use crate::rtmp::handshake::{ServerHandshake, ThreadRandom};
use crate::rtmp::message::{self, csid, Command, Message, UserControl};
use crate::rtmp::session::{
    as_u32, clamp_out_chunk, code, command, media_parts, redirect_info, status, Link, Opening,
    Random, SessionError, NULL, RELAY_PROPERTY,
};

/// What the server announces to each peer after `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Our outgoing chunk size; large so most media messages fit one chunk.
    /// Clamped to 128..=65536, the range every known client accepts.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size asked of the peer.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth value (sent with the "dynamic" limit type).
    pub peer_bandwidth: u32,
}

impl Default for ServerConfig {
    /// SRS's defaults.
    fn default() -> Self {
        ServerConfig {
            out_chunk_size: 60000,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
        }
    }
}

/// The fields of a `connect` command the engine routes and authorises on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    /// Application name without any query (and without a trailing `/`).
    pub app: String,
    /// Query part of the `app` field if present, e.g. `vhost=x&token=y`
    /// (SRS-style `rtmp://host/app?vhost=x/stream` URLs put it there).
    pub app_query: String,
    pub tc_url: String,
    pub page_url: String,
    pub swf_url: String,
    /// 0 (AMF0) or 3 (AMF3); echoed in the connect reply. ringcast answers
    /// in AMF0 either way, which AMF3 clients accept.
    pub object_encoding: f64,
    /// The client relays what it plays (a ringcast edge's pull:
    /// [`RELAY_PROPERTY`] in its connect object).
    pub relay: bool,
}

/// Something the engine must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The engine answers with `accept_connect`, `reject_connect` or
    /// `redirect_connect`.
    Connect(ConnectInfo),
    /// The engine answers with `accept_publish` or `reject_publish`.
    Publish {
        stream_id: u32,
        /// Stream name including any `?query`.
        name: String,
        /// `live`, `record` or `append`.
        kind: String,
    },
    /// The engine answers with `accept_play` or `reject_play`.
    Play {
        stream_id: u32,
        name: String,
        start: f64,
    },
    /// Audio (8), video (9) or AMF0 data (18) from a publishing stream,
    /// including media sent between `publish` and the engine's answer.
    /// AMF3 data arrives converted to type 18 and aggregates split up; the
    /// engine normalises metadata itself.
    Media(RtmpMessage),
    /// FCUnpublish / deleteStream / closeStream on a publishing stream.
    Unpublish { stream_id: u32 },
    /// deleteStream / closeStream on a playing stream.
    StreamClosed { stream_id: u32 },
}

/// Where the `connect` exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    AwaitConnect,
    /// `connect` reported; the engine has not answered yet. Replies to
    /// commands that arrive meanwhile are held back so they cannot overtake
    /// the connect reply.
    Pending,
    Connected,
    /// Refused or redirected: further commands are ignored while the engine
    /// closes the connection.
    Rejected,
}

/// The only message stream id a connection gets: every player's media is
/// sent on it because encoded chunks are shared by all players, so they
/// carry one id. `createStream` always answers it (as SRS and nginx-rtmp
/// do), so a client that retries on the same connection gets it again;
/// `publish` or `play` on any other id is refused with an error onStatus.
pub const MEDIA_STREAM_ID: u32 = 1;

/// The life of the message stream (created by `createStream`).
#[derive(Debug, Clone, PartialEq)]
enum StreamState {
    Idle,
    /// `publish` reported; the engine may not have answered yet.
    Publishing {
        accepted: bool,
    },
    /// The publish was refused or ended: media still in flight is dropped
    /// instead of failing the connection.
    Ended,
    Playing {
        accepted: bool,
    },
}

/// Most replies held back while `connect` awaits the engine's answer.
const MAX_HELD: usize = 64;

/// One server-side RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    cfg: ServerConfig,
    /// `Some` until the handshake completes.
    handshake: Option<Opening<ServerHandshake>>,
    link: Link,
    conn: Conn,
    connect_tx: f64,
    /// Boxed: a session outlives its connect (a player plays for hours)
    /// and should not carry the fields inline.
    info: Option<Box<ConnectInfo>>,
    /// Replies (csid, message stream id, message) held while `Conn::Pending`;
    /// kept as messages because the chunk size changes when they are sent.
    held: Vec<(u32, u32, Message)>,
    /// FMLE-style publishers announce with FCPublish and expect onFCPublish.
    fc_publish: bool,
    /// The message stream [`MEDIA_STREAM_ID`], once created.
    stream: Option<StreamState>,
}

impl ServerSession {
    /// A session for a freshly accepted connection, expecting C0+C1.
    pub fn new(cfg: ServerConfig) -> Self {
        Self::with_random(cfg, Box::new(ThreadRandom))
    }

    /// [`new`](Self::new) with the handshake's random bytes drawn from
    /// `random`, so a test with a seeded generator sends the same bytes on
    /// every run.
    pub fn with_random(cfg: ServerConfig, random: Random) -> Self {
        let cfg = ServerConfig {
            out_chunk_size: clamp_out_chunk(cfg.out_chunk_size),
            ..cfg
        };
        ServerSession {
            cfg,
            handshake: Some(Opening::new(ServerHandshake::new(), random)),
            link: Link::new(),
            conn: Conn::AwaitConnect,
            connect_tx: 0.0,
            info: None,
            held: Vec::new(),
            fc_publish: false,
            stream: None,
        }
    }

    /// Feeds received bytes (handshake first, then chunks). Appends bytes to
    /// send to `out`, pushes events. Processes everything complete in
    /// `input`, leaving only an incomplete tail.
    pub fn on_bytes(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), SessionError> {
        if let Some(opening) = &mut self.handshake {
            if !opening.step(input, out)? {
                return Ok(());
            }
            self.handshake = None;
        }
        while let Some(msg) = self.link.receive(input)? {
            self.handle(msg, out, events)?;
            self.link.acknowledge(out);
        }
        Ok(())
    }

    /// Our outgoing chunk size once `accept_connect` announced it; the
    /// engine encodes shared media chunks with it.
    pub fn out_chunk_size(&self) -> u32 {
        self.cfg.out_chunk_size
    }

    /// What the peer's `connect` said, once it arrived; the engine needs it
    /// again for publish/play decisions (vhost, app, hooks).
    pub fn connect_info(&self) -> Option<&ConnectInfo> {
        self.info.as_deref()
    }

    /// Drops what only the set-up needed (the connect fields, held
    /// replies), once the engine has taken what it keeps: a playing
    /// connection lives on with just its chunk and control state.
    pub fn forget_set_up(&mut self) {
        self.info = None;
        self.held = Vec::new();
        self.link.shrink();
    }

    /// Lets the engine apply a shorter timeout to connections that never
    /// finish the handshake.
    pub fn is_handshake_done(&self) -> bool {
        self.handshake.is_none()
    }

    /// Accepts the pending `connect`: WindowAckSize, SetPeerBandwidth,
    /// SetChunkSize, `_result` (NetConnection.Connect.Success), onBWDone,
    /// then any replies held back meanwhile. A no-op unless a connect is
    /// pending.
    pub fn accept_connect(&mut self, out: &mut BytesMut) {
        if self.conn != Conn::Pending {
            return;
        }
        self.conn = Conn::Connected;
        self.control(Message::WindowAckSize(self.cfg.window_ack_size), out);
        self.control(
            Message::SetPeerBandwidth {
                size: self.cfg.peer_bandwidth,
                limit_type: 2,
            },
            out,
        );
        self.link.set_out_chunk(self.cfg.out_chunk_size, out);
        let props = Amf0Value::object([
            ("fmsVer", Amf0Value::string("FMS/3,5,3,888")),
            ("capabilities", Amf0Value::Number(127.0)),
            ("mode", Amf0Value::Number(1.0)),
        ]);
        let mut info = status(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        if let Amf0Value::Object(pairs) = &mut info {
            let encoding = self.info.as_ref().map_or(0.0, |i| i.object_encoding);
            pairs.push(("objectEncoding".into(), Amf0Value::Number(encoding)));
        }
        let reply = command("_result", self.connect_tx, props, vec![info]);
        self.write(csid::COMMAND, 0, &reply, out);
        self.write(
            csid::COMMAND,
            0,
            &command("onBWDone", 0.0, NULL, vec![]),
            out,
        );
        for (cs, msid, m) in std::mem::take(&mut self.held) {
            self.write(cs, msid, &m, out);
        }
    }

    /// Refuses the pending `connect` with `_error`
    /// (NetConnection.Connect.Rejected); the engine then closes.
    pub fn reject_connect(&mut self, description: &str, out: &mut BytesMut) {
        let info = status("error", code::CONNECT_REJECTED, description);
        self.refuse_connect(info, out);
    }

    /// Refuses the pending `connect` with an RTMP 302: `_error` whose info
    /// carries `ex: {code: 302, redirect: tc_url, redirect2: full_url}`,
    /// which Flash, SRS edges and ringcast's client follow.
    pub fn redirect_connect(&mut self, tc_url: &str, full_url: &str, out: &mut BytesMut) {
        let info = redirect_info(tc_url, full_url);
        self.refuse_connect(info, out);
    }

    fn refuse_connect(&mut self, info: Amf0Value, out: &mut BytesMut) {
        if self.conn != Conn::Pending {
            return;
        }
        self.conn = Conn::Rejected;
        self.held.clear();
        let reply = command("_error", self.connect_tx, NULL, vec![info]);
        self.write(csid::COMMAND, 0, &reply, out);
    }

    /// Accepts the pending `publish` on `stream_id`: onFCPublish (if the
    /// client sent FCPublish) and onStatus NetStream.Publish.Start. A no-op
    /// if that stream has no pending publish (e.g. it was deleted meanwhile,
    /// which the engine also learns from an `Unpublish` event).
    pub fn accept_publish(&mut self, stream_id: u32, out: &mut BytesMut) {
        let Some(StreamState::Publishing { accepted, .. }) = self.stream_mut(stream_id) else {
            return;
        };
        if *accepted {
            return;
        }
        *accepted = true;
        let desc = "Started publishing stream.";
        if self.fc_publish {
            let info = Amf0Value::object([
                ("code", Amf0Value::string(code::PUBLISH_START)),
                ("description", Amf0Value::string(desc)),
            ]);
            let m = command("onFCPublish", 0.0, NULL, vec![info]);
            self.write(csid::STREAM, stream_id, &m, out);
        }
        self.on_status(stream_id, "status", code::PUBLISH_START, desc, out);
    }

    /// Refuses the pending `publish` on `stream_id` with an error onStatus
    /// (e.g. `NetStream.Publish.BadName`); media already in flight is
    /// dropped.
    pub fn reject_publish(
        &mut self,
        stream_id: u32,
        code: &str,
        description: &str,
        out: &mut BytesMut,
    ) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        if !matches!(
            state,
            StreamState::Publishing {
                accepted: false,
                ..
            }
        ) {
            return;
        }
        *state = StreamState::Ended;
        self.on_status(stream_id, "error", code, description, out);
    }

    /// Accepts the pending `play` on `stream_id`: StreamBegin, onStatus
    /// NetStream.Play.Reset and NetStream.Play.Start, |RtmpSampleAccess.
    /// After this the engine writes media with message stream id 1.
    /// No `onStatus` data message (NetStream.Data.Start, as SRS sends): the
    /// FLV demuxers of ffmpeg, VLC and OBS know only onMetaData, onCuePoint
    /// and |RtmpSampleAccess, and turn any other into a bogus data stream.
    pub fn accept_play(&mut self, stream_id: u32, out: &mut BytesMut) {
        let Some(StreamState::Playing { accepted }) = self.stream_mut(stream_id) else {
            return;
        };
        if *accepted {
            return;
        }
        *accepted = true;
        self.control(
            Message::UserControl(UserControl::StreamBegin(stream_id)),
            out,
        );
        self.on_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            "Playing and resetting stream.",
            out,
        );
        self.on_status(
            stream_id,
            "status",
            code::PLAY_START,
            "Started playing stream.",
            out,
        );
        let access = amf0::encode_all(&[
            Amf0Value::string("|RtmpSampleAccess"),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ]);
        self.write(
            csid::STREAM,
            stream_id,
            &Message::Data(Bytes::from(access)),
            out,
        );
    }

    /// Refuses the pending `play` on `stream_id` with an error onStatus
    /// (e.g. `NetStream.Play.StreamNotFound`).
    pub fn reject_play(
        &mut self,
        stream_id: u32,
        code: &str,
        description: &str,
        out: &mut BytesMut,
    ) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        if *state != (StreamState::Playing { accepted: false }) {
            return;
        }
        *state = StreamState::Idle;
        self.on_status(stream_id, "error", code, description, out);
    }

    /// Sends a player of `stream_id` to another server that holds the
    /// stream (origin cluster), as SRS does at play time: onStatus
    /// NetConnection.Connect.Rejected with `ex.code` 302 and the target.
    /// A no-op unless that stream has a pending `play`.
    pub fn redirect_play(
        &mut self,
        stream_id: u32,
        tc_url: &str,
        full_url: &str,
        out: &mut BytesMut,
    ) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        if *state != (StreamState::Playing { accepted: false }) {
            return;
        }
        *state = StreamState::Idle;
        let info = redirect_info(tc_url, full_url);
        let m = command("onStatus", 0.0, NULL, vec![info]);
        self.write(csid::STREAM, stream_id, &m, out);
    }

    /// Tells a player its source went away: StreamEOF and onStatus
    /// NetStream.Play.UnpublishNotify. The player stays connected.
    pub fn unpublish_notify(&mut self, stream_id: u32, out: &mut BytesMut) {
        self.control(Message::UserControl(UserControl::StreamEof(stream_id)), out);
        self.on_status(
            stream_id,
            "status",
            code::PLAY_UNPUBLISH_NOTIFY,
            "stream is now unpublished.",
            out,
        );
    }

    /// Tells a waiting player its source is back: onStatus
    /// NetStream.Play.PublishNotify and StreamBegin.
    pub fn publish_notify(&mut self, stream_id: u32, out: &mut BytesMut) {
        self.on_status(
            stream_id,
            "status",
            code::PLAY_PUBLISH_NOTIFY,
            "stream is now published.",
            out,
        );
        self.control(
            Message::UserControl(UserControl::StreamBegin(stream_id)),
            out,
        );
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut StreamState> {
        self.stream.as_mut().filter(|_| id == MEDIA_STREAM_ID)
    }

    fn write(&self, cs: u32, stream_id: u32, m: &Message, out: &mut BytesMut) {
        self.link.write(cs, stream_id, m, out);
    }

    /// Protocol control and user control messages, which are never held:
    /// they carry no ordering relation to command replies.
    fn control(&self, m: Message, out: &mut BytesMut) {
        self.link.control(m, out);
    }

    fn on_status(
        &self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
        out: &mut BytesMut,
    ) {
        let m = command(
            "onStatus",
            0.0,
            NULL,
            vec![status(level, code, description)],
        );
        self.write(csid::STREAM, stream_id, &m, out);
    }

    /// Sends a command reply now, or holds it while `connect` is pending.
    fn reply(
        &mut self,
        cs: u32,
        stream_id: u32,
        m: Message,
        out: &mut BytesMut,
    ) -> Result<(), SessionError> {
        if self.conn != Conn::Pending {
            self.write(cs, stream_id, &m, out);
            return Ok(());
        }
        if self.held.len() >= MAX_HELD {
            return Err(SessionError::Protocol(
                "too many commands while connect awaits an answer".into(),
            ));
        }
        self.held.push((cs, stream_id, m));
        Ok(())
    }

    fn handle(
        &mut self,
        msg: RtmpMessage,
        out: &mut BytesMut,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), SessionError> {
        let Some(parsed) = self.link.on_control(message::parse(&msg)?, out)? else {
            return Ok(());
        };
        match parsed {
            // Protocol control the link applied, and what needs no answer.
            Message::SetChunkSize(_)
            | Message::Abort(_)
            | Message::WindowAckSize(_)
            | Message::Ack(_)
            | Message::SetPeerBandwidth { .. }
            | Message::UserControl(_)
            | Message::Unknown { .. } => {}
            Message::Command(c) => self.on_command(c, msg.header.stream_id, out, events)?,
            parsed @ (Message::Audio(_)
            | Message::Video(_)
            | Message::Data(_)
            | Message::Aggregate(_)) => {
                let stream_id = msg.header.stream_id;
                match self.stream_mut(stream_id) {
                    Some(StreamState::Publishing { .. }) => {
                        media_parts(msg, parsed, |m| events.push(ServerEvent::Media(m)))?
                    }
                    Some(StreamState::Ended) => {}
                    _ => {
                        return Err(SessionError::Protocol(format!(
                        "media message of type {} on stream {stream_id}, which is not publishing",
                        msg.header.type_id
                    )))
                    }
                }
            }
        }
        Ok(())
    }

    fn on_command(
        &mut self,
        c: Command,
        stream_id: u32,
        out: &mut BytesMut,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), SessionError> {
        match self.conn {
            Conn::AwaitConnect if c.name == "connect" => return self.on_connect(c, events),
            Conn::AwaitConnect => {
                return Err(SessionError::Protocol(format!("{} before connect", c.name)))
            }
            Conn::Rejected => return Ok(()),
            Conn::Pending | Conn::Connected => {}
        }
        let tx = c.transaction_id;
        let wants_reply = tx != 0.0;
        match c.name.as_str() {
            "connect" => return Err(SessionError::Protocol("connect sent twice".into())),
            "releaseStream" | "FCPublish" => {
                self.fc_publish |= c.name == "FCPublish";
                if wants_reply {
                    let m = command("_result", tx, NULL, vec![Amf0Value::Undefined]);
                    self.reply(csid::COMMAND, 0, m, out)?;
                }
            }
            "createStream" => {
                self.stream.get_or_insert(StreamState::Idle);
                let id = Amf0Value::Number(f64::from(MEDIA_STREAM_ID));
                let m = command("_result", tx, NULL, vec![id]);
                self.reply(csid::COMMAND, 0, m, out)?;
            }
            "publish" | "play" if stream_id != MEDIA_STREAM_ID => {
                return Err(self.refuse_other_stream(&c.name, stream_id, out));
            }
            "publish" => self.on_publish(&c, stream_id, events)?,
            "play" => self.on_play(&c, stream_id, events)?,
            "FCUnpublish" => {
                // Clients disagree on which form of the stream name they
                // repeat here; the one stream is the one they mean.
                if matches!(self.stream, Some(StreamState::Publishing { .. })) {
                    let id = MEDIA_STREAM_ID;
                    self.end_stream(id, events);
                    let m = command(
                        "onStatus",
                        0.0,
                        NULL,
                        vec![status(
                            "status",
                            "NetStream.Unpublish.Success",
                            "Stream is now unpublished.",
                        )],
                    );
                    self.reply(csid::STREAM, id, m, out)?;
                }
                if wants_reply {
                    let m = command("_result", tx, NULL, vec![Amf0Value::Undefined]);
                    self.reply(csid::COMMAND, 0, m, out)?;
                }
            }
            "deleteStream" => {
                // An id that is not an integer cannot name any stream.
                let id = c.args.first().and_then(Amf0Value::as_f64).and_then(as_u32);
                if id == Some(MEDIA_STREAM_ID) {
                    self.end_stream(MEDIA_STREAM_ID, events);
                    self.stream = None;
                }
            }
            "closeStream" => self.end_stream(stream_id, events),
            "getStreamLength" => {
                if wants_reply {
                    let m = command("_result", tx, NULL, vec![Amf0Value::Number(0.0)]);
                    self.reply(csid::COMMAND, 0, m, out)?;
                }
            }
            // Bandwidth probes, player preferences and replies to our own
            // commands need no answer.
            "checkBandwidth" | "_checkbw" | "receiveAudio" | "receiveVideo" | "_result"
            | "_error" | "onStatus" | "onBWDone" => {}
            _ => {
                if wants_reply {
                    let desc = format!("Method not found ({}).", c.name);
                    let info = status("error", "NetConnection.Call.Failed", &desc);
                    let m = command("_error", tx, NULL, vec![info]);
                    self.reply(csid::COMMAND, 0, m, out)?;
                }
            }
        }
        Ok(())
    }

    fn on_connect(
        &mut self,
        c: Command,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), SessionError> {
        if !matches!(c.object, Amf0Value::Object(_) | Amf0Value::EcmaArray(_)) {
            return Err(SessionError::Protocol(
                "connect without a command object".into(),
            ));
        }
        let text = |key: &str| {
            c.object
                .get(key)
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
        };
        let raw_app = text("app");
        let (app, app_query) = raw_app.split_once('?').unwrap_or((raw_app, ""));
        let info = ConnectInfo {
            app: app.trim_end_matches('/').to_owned(),
            app_query: app_query.to_owned(),
            tc_url: text("tcUrl").to_owned(),
            page_url: text("pageUrl").to_owned(),
            swf_url: text("swfUrl").to_owned(),
            object_encoding: c
                .object
                .get("objectEncoding")
                .and_then(Amf0Value::as_f64)
                .unwrap_or(0.0),
            relay: c
                .object
                .get(RELAY_PROPERTY)
                .and_then(Amf0Value::as_bool)
                .unwrap_or(false),
        };
        self.conn = Conn::Pending;
        self.connect_tx = c.transaction_id;
        self.info = Some(Box::new(info.clone()));
        events.push(ServerEvent::Connect(info));
        Ok(())
    }

    /// Answers a `publish` or `play` on a message stream id other than
    /// [`MEDIA_STREAM_ID`] (which `createStream` never hands out) with an
    /// error onStatus on that id, so the client reports why, and returns
    /// the error that makes the engine log it and close: media could only
    /// go out on [`MEDIA_STREAM_ID`], where the client is not listening.
    fn refuse_other_stream(&self, what: &str, stream_id: u32, out: &mut BytesMut) -> SessionError {
        let code = if what == "play" {
            "NetStream.Play.Failed"
        } else {
            "NetStream.Failed"
        };
        let why = format!(
            "{what} on message stream {stream_id}: ringcast serves stream {MEDIA_STREAM_ID} only, \
             the id createStream returns"
        );
        self.on_status(stream_id, "error", code, &why, out);
        SessionError::Protocol(why)
    }

    /// The stream a `publish` or `play` may start on: created and neither
    /// publishing nor playing.
    fn idle_stream(
        &mut self,
        stream_id: u32,
        what: &str,
    ) -> Result<&mut StreamState, SessionError> {
        match self.stream_mut(stream_id) {
            Some(s @ (StreamState::Idle | StreamState::Ended)) => Ok(s),
            Some(_) => Err(SessionError::Protocol(format!(
                "{what} on stream {stream_id}, which is already in use"
            ))),
            None => Err(SessionError::Protocol(format!(
                "{what} on stream {stream_id}, which was never created"
            ))),
        }
    }

    fn on_publish(
        &mut self,
        c: &Command,
        stream_id: u32,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), SessionError> {
        let name = stream_name(c, "publish")?;
        let kind = c.args.get(1).and_then(Amf0Value::as_str).unwrap_or("live");
        *self.idle_stream(stream_id, "publish")? = StreamState::Publishing { accepted: false };
        events.push(ServerEvent::Publish {
            stream_id,
            name: name.to_owned(),
            kind: kind.to_owned(),
        });
        Ok(())
    }

    fn on_play(
        &mut self,
        c: &Command,
        stream_id: u32,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), SessionError> {
        let name = stream_name(c, "play")?;
        let start = c.args.get(1).and_then(Amf0Value::as_f64).unwrap_or(-2.0);
        *self.idle_stream(stream_id, "play")? = StreamState::Playing { accepted: false };
        events.push(ServerEvent::Play {
            stream_id,
            name: name.to_owned(),
            start,
        });
        Ok(())
    }

    /// Ends whatever `stream_id` is doing and reports it; the stream stays
    /// created.
    fn end_stream(&mut self, stream_id: u32, events: &mut Vec<ServerEvent>) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        match state {
            StreamState::Publishing { .. } => {
                *state = StreamState::Ended;
                events.push(ServerEvent::Unpublish { stream_id });
            }
            StreamState::Playing { .. } => {
                *state = StreamState::Idle;
                events.push(ServerEvent::StreamClosed { stream_id });
            }
            StreamState::Idle | StreamState::Ended => {}
        }
    }
}

fn stream_name<'a>(c: &'a Command, what: &str) -> Result<&'a str, SessionError> {
    c.args
        .first()
        .and_then(Amf0Value::as_str)
        .ok_or_else(|| SessionError::Protocol(format!("{what} without a stream name")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::{self, ChunkDecoder, MessageHeader};
    use crate::rtmp::handshake::ClientHandshake;
    use crate::rtmp::message::{msg_type, MessageError};
    use crate::rtmp::pair::{seeded, SEED};
    use crate::rtmp::session::write_message;
    use proptest::prelude::*;

    /// A server past the handshake, driven by hand-built chunks.
    struct Raw {
        s: ServerSession,
        input: BytesMut,
        out: BytesMut,
        events: Vec<ServerEvent>,
        /// Decodes what the server sent, as a client would.
        peer: ChunkDecoder,
    }

    fn raw_with(cfg: ServerConfig) -> Raw {
        let mut s = ServerSession::with_random(cfg, seeded(SEED));
        let mut ch = ClientHandshake::new(false);
        let mut random = seeded(SEED + 1);
        let (mut input, mut out, mut events) = (BytesMut::new(), BytesMut::new(), Vec::new());
        let mut c0c1 = Vec::new();
        ch.start(&mut c0c1, &mut *random);
        input.extend_from_slice(&c0c1);
        s.on_bytes(&mut input, &mut out, &mut events).unwrap();
        let mut c2 = Vec::new();
        assert!(ch.process(&mut out, &mut c2, &mut *random).unwrap());
        input.extend_from_slice(&c2);
        s.on_bytes(&mut input, &mut out, &mut events).unwrap();
        assert!(s.is_handshake_done());
        assert!(events.is_empty());
        Raw {
            s,
            input,
            out,
            events,
            peer: ChunkDecoder::new(),
        }
    }

    fn raw() -> Raw {
        raw_with(ServerConfig::default())
    }

    fn cmd(name: &str, tx: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Message {
        command(name, tx, object, args)
    }

    fn connect_object(app: &str) -> Amf0Value {
        Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("type", Amf0Value::string("nonprivate")),
            (
                "flashVer",
                Amf0Value::string("FMLE/3.0 (compatible; Lavf60.3.100)"),
            ),
            ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
        ])
    }

    impl Raw {
        /// Queues a message as a client at chunk size 128 would send it.
        fn queue(&mut self, cs: u32, msid: u32, m: &Message) {
            write_message(m, cs, msid, 128, &mut self.input);
        }

        fn feed(&mut self) -> Result<(), SessionError> {
            self.s
                .on_bytes(&mut self.input, &mut self.out, &mut self.events)
        }

        fn send(&mut self, cs: u32, msid: u32, m: &Message) -> Result<(), SessionError> {
            self.queue(cs, msid, m);
            self.feed()
        }

        fn media(
            &mut self,
            type_id: u8,
            msid: u32,
            ts: u32,
            payload: &[u8],
        ) -> Result<(), SessionError> {
            let h = MessageHeader {
                csid: 6,
                timestamp: ts,
                type_id,
                stream_id: msid,
            };
            chunk::encode_message(&h, payload, 128, &mut self.input);
            self.feed()
        }

        /// Everything the server sent since the last call, decoded.
        fn replies(&mut self) -> Vec<(MessageHeader, Message)> {
            let mut v = Vec::new();
            while let Some(m) = self.peer.decode(&mut self.out).unwrap() {
                let parsed = message::parse(&m).unwrap();
                if let Message::SetChunkSize(n) = parsed {
                    self.peer.set_chunk_size(n).unwrap();
                }
                v.push((m.header, parsed));
            }
            assert!(self.out.is_empty());
            v
        }

        fn connect(&mut self) {
            self.send(3, 0, &cmd("connect", 1.0, connect_object("live"), vec![]))
                .unwrap();
            self.s.accept_connect(&mut self.out);
            self.events.clear();
            self.replies();
        }

        fn create_stream(&mut self) -> u32 {
            self.send(3, 0, &cmd("createStream", 4.0, NULL, vec![]))
                .unwrap();
            match self.replies().as_slice() {
                [(_, Message::Command(c))] if c.name == "_result" => {
                    c.args[0].as_f64().unwrap() as u32
                }
                other => panic!("unexpected {other:?}"),
            }
        }

        fn publish(&mut self, name: &str) -> u32 {
            self.connect();
            let id = self.create_stream();
            let args = vec![Amf0Value::string(name), Amf0Value::string("live")];
            self.send(5, id, &cmd("publish", 5.0, NULL, args)).unwrap();
            self.s.accept_publish(id, &mut self.out);
            self.events.clear();
            self.replies();
            id
        }

        fn play(&mut self, name: &str) -> u32 {
            self.connect();
            let id = self.create_stream();
            self.send(
                8,
                id,
                &cmd("play", 0.0, NULL, vec![Amf0Value::string(name)]),
            )
            .unwrap();
            self.s.accept_play(id, &mut self.out);
            self.events.clear();
            self.replies();
            id
        }
    }

    fn command_of(m: &Message) -> &Command {
        match m {
            Message::Command(c) => c,
            other => panic!("not a command: {other:?}"),
        }
    }

    fn info_code(c: &Command) -> &str {
        c.args[0].get("code").and_then(Amf0Value::as_str).unwrap()
    }

    fn protocol_err(r: Result<(), SessionError>) -> String {
        match r {
            Err(SessionError::Protocol(why)) => why,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn session_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<ServerSession>();
    }

    /// The sequence FFmpeg and OBS send, in one burst before the engine
    /// decides: replies must wait for, and follow, the connect reply.
    #[test]
    fn ffmpeg_publish_sequence() {
        let mut r = raw();
        r.queue(
            3,
            0,
            &cmd(
                "connect",
                1.0,
                connect_object("live?vhost=v1&token=t/"),
                vec![],
            ),
        );
        r.queue(
            3,
            0,
            &cmd(
                "releaseStream",
                2.0,
                NULL,
                vec![Amf0Value::string("cam?k=1")],
            ),
        );
        r.queue(
            3,
            0,
            &cmd("FCPublish", 3.0, NULL, vec![Amf0Value::string("cam?k=1")]),
        );
        r.queue(3, 0, &cmd("createStream", 4.0, NULL, vec![]));
        r.queue(
            8,
            1,
            &cmd(
                "publish",
                5.0,
                NULL,
                vec![Amf0Value::string("cam?k=1"), Amf0Value::string("live")],
            ),
        );
        r.feed().unwrap();
        let info = ConnectInfo {
            app: "live".into(),
            app_query: "vhost=v1&token=t/".into(),
            tc_url: "rtmp://127.0.0.1:1935/live".into(),
            page_url: String::new(),
            swf_url: String::new(),
            object_encoding: 0.0,
            relay: false,
        };
        assert_eq!(
            r.events,
            vec![
                ServerEvent::Connect(info.clone()),
                ServerEvent::Publish {
                    stream_id: 1,
                    name: "cam?k=1".into(),
                    kind: "live".into()
                }
            ]
        );
        assert_eq!(r.s.connect_info(), Some(&info));
        assert!(
            r.replies().is_empty(),
            "nothing may precede the connect reply"
        );

        r.s.accept_connect(&mut r.out);
        let replies = r.replies();
        assert_eq!(replies[0].1, Message::WindowAckSize(2_500_000));
        assert_eq!(
            replies[1].1,
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: 2
            }
        );
        assert_eq!(replies[2].1, Message::SetChunkSize(60000));
        assert!(replies[..3]
            .iter()
            .all(|(h, _)| h.csid == 2 && h.stream_id == 0));
        let result = command_of(&replies[3].1);
        assert_eq!(
            (result.name.as_str(), result.transaction_id),
            ("_result", 1.0)
        );
        assert_eq!(replies[3].0.csid, 3);
        assert_eq!(
            result.object.get("fmsVer").and_then(Amf0Value::as_str),
            Some("FMS/3,5,3,888")
        );
        assert_eq!(info_code(result), "NetConnection.Connect.Success");
        assert_eq!(command_of(&replies[4].1).name, "onBWDone");
        let rest: Vec<_> = replies[5..]
            .iter()
            .map(|(_, m)| {
                let c = command_of(m);
                (c.name.clone(), c.transaction_id, c.args.clone())
            })
            .collect();
        assert_eq!(
            rest,
            vec![
                ("_result".into(), 2.0, vec![Amf0Value::Undefined]),
                ("_result".into(), 3.0, vec![Amf0Value::Undefined]),
                ("_result".into(), 4.0, vec![Amf0Value::Number(1.0)]),
            ]
        );

        r.s.accept_publish(1, &mut r.out);
        let replies = r.replies();
        assert_eq!(replies.len(), 2);
        assert_eq!(command_of(&replies[0].1).name, "onFCPublish");
        let status = command_of(&replies[1].1);
        assert_eq!(status.name, "onStatus");
        assert_eq!(info_code(status), "NetStream.Publish.Start");
        assert!(replies.iter().all(|(h, _)| h.csid == 5 && h.stream_id == 1));
        // A second answer is a no-op.
        r.s.accept_publish(1, &mut r.out);
        assert!(r.replies().is_empty());

        r.events.clear();
        let frame: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        r.media(msg_type::VIDEO, 1, 40, &frame).unwrap();
        r.media(msg_type::AUDIO, 1, 41, &[0xaf, 1, 2]).unwrap();
        let got: Vec<_> = r
            .events
            .iter()
            .map(|e| match e {
                ServerEvent::Media(m) => (m.header.type_id, m.header.timestamp, m.payload.to_vec()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(got, vec![(9, 40, frame), (8, 41, vec![0xaf, 1, 2])]);
    }

    #[test]
    fn media_before_publish_answer_is_reported() {
        let mut r = raw();
        r.connect();
        let id = r.create_stream();
        r.send(
            5,
            id,
            &cmd("publish", 5.0, NULL, vec![Amf0Value::string("s")]),
        )
        .unwrap();
        r.media(msg_type::DATA_AMF0, id, 0, &[2, 0, 1, b'x'])
            .unwrap();
        assert!(matches!(
            r.events.as_slice(),
            [ServerEvent::Publish { kind, .. }, ServerEvent::Media(_)] if kind == "live"
        ));
        // No FCPublish was seen: just onStatus.
        r.s.accept_publish(id, &mut r.out);
        let replies = r.replies();
        assert_eq!(replies.len(), 1);
        assert_eq!(
            info_code(command_of(&replies[0].1)),
            "NetStream.Publish.Start"
        );
    }

    #[test]
    fn amf3_data_and_aggregates_become_plain_media() {
        let mut r = raw();
        let id = r.publish("s");
        r.media(msg_type::DATA_AMF3, id, 5, &[0, 2, 0, 1, b'x'])
            .unwrap();
        let mut agg = Vec::new();
        for (t, ts, body) in [
            (9u8, 10u32, &[1u8, 2][..]),
            (8, 20, &[3][..]),
            (1, 30, &[0, 0, 0, 1][..]),
        ] {
            agg.push(t);
            agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            agg.extend_from_slice(&ts.to_be_bytes()[1..]);
            agg.extend_from_slice(&[0, 0, 0, 0]);
            agg.extend_from_slice(body);
            agg.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
        }
        r.media(msg_type::AGGREGATE, id, 100, &agg).unwrap();
        let got: Vec<_> = r
            .events
            .iter()
            .map(|e| match e {
                ServerEvent::Media(m) => (m.header.type_id, m.header.timestamp, m.payload.to_vec()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (18, 5, vec![2, 0, 1, b'x']),
                (9, 100, vec![1, 2]),
                (8, 110, vec![3]),
            ]
        );
    }

    #[test]
    fn play_accept_sequence() {
        let mut r = raw();
        r.connect();
        let id = r.create_stream();
        assert_eq!(id, 1);
        let args = vec![Amf0Value::string("cam"), Amf0Value::Number(-1.0)];
        r.send(8, id, &cmd("play", 0.0, NULL, args)).unwrap();
        assert_eq!(
            r.events,
            vec![ServerEvent::Play {
                stream_id: 1,
                name: "cam".into(),
                start: -1.0
            }]
        );
        r.s.accept_play(id, &mut r.out);
        let replies = r.replies();
        assert_eq!(
            replies[0].1,
            Message::UserControl(UserControl::StreamBegin(1))
        );
        assert_eq!(info_code(command_of(&replies[1].1)), "NetStream.Play.Reset");
        assert_eq!(info_code(command_of(&replies[2].1)), "NetStream.Play.Start");
        let Message::Data(access) = &replies[3].1 else {
            panic!("not data")
        };
        assert_eq!(
            amf0::decode_all(access).unwrap(),
            vec![
                Amf0Value::string("|RtmpSampleAccess"),
                Amf0Value::Boolean(true),
                Amf0Value::Boolean(true)
            ]
        );
        assert_eq!(replies.len(), 4, "nothing a demuxer takes for a stream");
        assert!(replies[1..]
            .iter()
            .all(|(h, _)| h.stream_id == 1 && h.csid == 5));

        r.s.unpublish_notify(id, &mut r.out);
        let replies = r.replies();
        assert_eq!(
            replies[0].1,
            Message::UserControl(UserControl::StreamEof(1))
        );
        assert_eq!(
            info_code(command_of(&replies[1].1)),
            "NetStream.Play.UnpublishNotify"
        );
        r.s.publish_notify(id, &mut r.out);
        let replies = r.replies();
        assert_eq!(
            info_code(command_of(&replies[0].1)),
            "NetStream.Play.PublishNotify"
        );
        assert_eq!(
            replies[1].1,
            Message::UserControl(UserControl::StreamBegin(1))
        );
    }

    #[test]
    fn play_or_publish_on_another_stream_is_refused_with_a_status() {
        for (what, code) in [
            ("play", "NetStream.Play.Failed"),
            ("publish", "NetStream.Failed"),
        ] {
            for other in [0, 2, 7] {
                let mut r = raw();
                r.connect();
                assert_eq!(r.create_stream(), MEDIA_STREAM_ID);
                let play = cmd(what, 0.0, NULL, vec![Amf0Value::string("x")]);
                let e = r.send(8, other, &play).unwrap_err();
                let want = format!("{what} on message stream {other}: ringcast serves stream 1");
                assert!(
                    matches!(&e, SessionError::Protocol(m) if m.starts_with(&want)),
                    "{e:?}"
                );
                assert!(r.events.is_empty(), "no {what} reaches the engine");
                let replies = r.replies();
                let [(h, m)] = replies.as_slice() else {
                    panic!("one onStatus expected: {replies:?}")
                };
                assert_eq!((h.stream_id, h.csid), (other, csid::STREAM));
                let c = command_of(m);
                assert_eq!((c.name.as_str(), info_code(c)), ("onStatus", code));
                assert_eq!(
                    c.args[0].get("level").and_then(Amf0Value::as_str),
                    Some("error")
                );
                assert!(c.args[0]
                    .get("description")
                    .and_then(Amf0Value::as_str)
                    .is_some_and(|d| d.starts_with(&want)));
            }
        }
    }

    #[test]
    fn create_stream_always_answers_the_media_stream() {
        let mut r = raw();
        r.connect();
        assert_eq!(r.create_stream(), MEDIA_STREAM_ID);
        assert_eq!(r.create_stream(), MEDIA_STREAM_ID);
        // A player retrying after a refused play gets the same stream and
        // may play on it.
        let play = cmd("play", 0.0, NULL, vec![Amf0Value::string("a")]);
        r.send(8, MEDIA_STREAM_ID, &play).unwrap();
        r.s.reject_play(
            MEDIA_STREAM_ID,
            "NetStream.Play.StreamNotFound",
            "no",
            &mut r.out,
        );
        r.events.clear();
        r.replies();
        assert_eq!(r.create_stream(), MEDIA_STREAM_ID);
        r.send(8, MEDIA_STREAM_ID, &play).unwrap();
        assert!(matches!(
            r.events.as_slice(),
            [ServerEvent::Play {
                stream_id: MEDIA_STREAM_ID,
                ..
            }]
        ));
        // createStream while the stream plays keeps it playing: a second
        // play on it is refused, nothing restarts.
        r.events.clear();
        assert_eq!(r.create_stream(), MEDIA_STREAM_ID);
        protocol_err(r.send(8, MEDIA_STREAM_ID, &play));
        // After deleteStream it must be created again.
        let mut r = raw();
        r.connect();
        let id = r.create_stream();
        let delete = cmd(
            "deleteStream",
            0.0,
            NULL,
            vec![Amf0Value::Number(f64::from(id))],
        );
        r.send(3, 0, &delete).unwrap();
        protocol_err(r.send(8, id, &play));
    }

    #[test]
    fn play_without_start_defaults_and_reject() {
        let mut r = raw();
        r.connect();
        let id = r.create_stream();
        r.send(8, id, &cmd("play", 0.0, NULL, vec![Amf0Value::string("x")]))
            .unwrap();
        assert!(matches!(r.events[0], ServerEvent::Play { start, .. } if start == -2.0));
        r.s.reject_play(
            id,
            "NetStream.Play.StreamNotFound",
            "no such stream",
            &mut r.out,
        );
        let replies = r.replies();
        let c = command_of(&replies[0].1);
        assert_eq!(info_code(c), "NetStream.Play.StreamNotFound");
        assert_eq!(
            c.args[0].get("level").and_then(Amf0Value::as_str),
            Some("error")
        );
        // The stream can play again.
        r.send(8, id, &cmd("play", 0.0, NULL, vec![Amf0Value::string("y")]))
            .unwrap();
        assert_eq!(r.events.len(), 2);
    }

    #[test]
    fn reject_publish_drops_media_in_flight() {
        let mut r = raw();
        r.connect();
        let id = r.create_stream();
        r.send(
            5,
            id,
            &cmd("publish", 0.0, NULL, vec![Amf0Value::string("s")]),
        )
        .unwrap();
        r.s.reject_publish(id, "NetStream.Publish.BadName", "taken", &mut r.out);
        let replies = r.replies();
        assert_eq!(
            info_code(command_of(&replies[0].1)),
            "NetStream.Publish.BadName"
        );
        r.events.clear();
        r.media(msg_type::VIDEO, id, 0, &[1]).unwrap();
        assert!(r.events.is_empty());
        // accept after reject is a no-op.
        r.s.accept_publish(id, &mut r.out);
        assert!(r.replies().is_empty());
    }

    #[test]
    fn connect_reject_and_redirect() {
        let mut r = raw();
        r.send(3, 0, &cmd("connect", 1.0, connect_object("live"), vec![]))
            .unwrap();
        r.send(3, 0, &cmd("createStream", 2.0, NULL, vec![]))
            .unwrap();
        r.s.reject_connect("denied", &mut r.out);
        let replies = r.replies();
        assert_eq!(replies.len(), 1, "held replies are dropped: {replies:?}");
        let c = command_of(&replies[0].1);
        assert_eq!((c.name.as_str(), c.transaction_id), ("_error", 1.0));
        assert_eq!(info_code(c), "NetConnection.Connect.Rejected");
        assert_eq!(
            c.args[0].get("description").and_then(Amf0Value::as_str),
            Some("denied")
        );
        // Further commands are ignored, and a second answer is a no-op.
        r.send(3, 0, &cmd("createStream", 3.0, NULL, vec![]))
            .unwrap();
        r.s.accept_connect(&mut r.out);
        assert!(r.replies().is_empty());

        let mut r = raw();
        r.send(3, 0, &cmd("connect", 1.0, connect_object("live"), vec![]))
            .unwrap();
        r.s.redirect_connect("rtmp://o2/live", "rtmp://o2/live/s", &mut r.out);
        let replies = r.replies();
        let c = command_of(&replies[0].1);
        assert_eq!(c.name, "_error");
        let ex = c.args[0].get("ex").unwrap();
        assert_eq!(ex.get("code").and_then(Amf0Value::as_f64), Some(302.0));
        assert_eq!(
            ex.get("redirect").and_then(Amf0Value::as_str),
            Some("rtmp://o2/live")
        );
        assert_eq!(
            ex.get("redirect2").and_then(Amf0Value::as_str),
            Some("rtmp://o2/live/s")
        );
    }

    #[test]
    fn amf3_connect_is_answered() {
        let mut r = raw();
        let mut obj = connect_object("live");
        if let Amf0Value::Object(p) = &mut obj {
            p.push(("objectEncoding".into(), Amf0Value::Number(3.0)));
        }
        let (_, body) = cmd("connect", 1.0, obj, vec![]).encode();
        let mut p = vec![0u8];
        p.extend_from_slice(&body);
        let h = MessageHeader {
            csid: 3,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF3,
            stream_id: 0,
        };
        chunk::encode_message(&h, &p, 128, &mut r.input);
        r.feed().unwrap();
        assert!(matches!(&r.events[0], ServerEvent::Connect(i) if i.object_encoding == 3.0));
        r.s.accept_connect(&mut r.out);
        let replies = r.replies();
        let c = command_of(&replies[3].1);
        assert_eq!(
            c.args[0].get("objectEncoding").and_then(Amf0Value::as_f64),
            Some(3.0)
        );
    }

    #[test]
    fn unpublish_paths() {
        // FCUnpublish then deleteStream: one Unpublish event.
        let mut r = raw();
        let id = r.publish("s?t=1");
        r.send(
            3,
            0,
            &cmd("FCUnpublish", 6.0, NULL, vec![Amf0Value::string("s")]),
        )
        .unwrap();
        r.send(
            3,
            0,
            &cmd(
                "deleteStream",
                7.0,
                NULL,
                vec![Amf0Value::Number(f64::from(id))],
            ),
        )
        .unwrap();
        assert_eq!(r.events, vec![ServerEvent::Unpublish { stream_id: id }]);
        let names: Vec<_> = r
            .replies()
            .iter()
            .map(|(_, m)| command_of(m).name.clone())
            .collect();
        assert_eq!(names, ["onStatus", "_result"]);
        // Media in flight after unpublish is dropped; on a deleted stream it is an error.
        protocol_err(r.media(msg_type::VIDEO, id, 0, &[1]));

        // deleteStream alone.
        let mut r = raw();
        let id = r.publish("s");
        r.send(
            3,
            0,
            &cmd(
                "deleteStream",
                6.0,
                NULL,
                vec![Amf0Value::Number(f64::from(id))],
            ),
        )
        .unwrap();
        assert_eq!(r.events, vec![ServerEvent::Unpublish { stream_id: id }]);

        // closeStream keeps the stream for another publish.
        let mut r = raw();
        let id = r.publish("s");
        r.send(5, id, &cmd("closeStream", 0.0, NULL, vec![]))
            .unwrap();
        r.send(
            5,
            id,
            &cmd("publish", 0.0, NULL, vec![Amf0Value::string("s")]),
        )
        .unwrap();
        assert!(matches!(
            r.events.as_slice(),
            [ServerEvent::Unpublish { .. }, ServerEvent::Publish { .. }]
        ));
    }

    #[test]
    fn player_close_paths() {
        let mut r = raw();
        let id = r.play("s");
        r.send(5, id, &cmd("closeStream", 0.0, NULL, vec![]))
            .unwrap();
        r.send(
            3,
            0,
            &cmd(
                "deleteStream",
                0.0,
                NULL,
                vec![Amf0Value::Number(f64::from(id))],
            ),
        )
        .unwrap();
        assert_eq!(r.events, vec![ServerEvent::StreamClosed { stream_id: id }]);
        let mut r = raw();
        let id = r.play("s");
        r.send(
            3,
            0,
            &cmd(
                "deleteStream",
                0.0,
                NULL,
                vec![Amf0Value::Number(f64::from(id))],
            ),
        )
        .unwrap();
        // Unknown or malformed ids are ignored.
        r.send(
            3,
            0,
            &cmd("deleteStream", 0.0, NULL, vec![Amf0Value::Number(1.5)]),
        )
        .unwrap();
        r.send(3, 0, &cmd("deleteStream", 0.0, NULL, vec![]))
            .unwrap();
        assert_eq!(r.events, vec![ServerEvent::StreamClosed { stream_id: id }]);
    }

    #[test]
    fn misc_commands_are_harmless() {
        let mut r = raw();
        r.connect();
        for name in [
            "checkBandwidth",
            "_checkbw",
            "receiveAudio",
            "receiveVideo",
            "onBWDone",
            "_result",
        ] {
            r.send(3, 0, &cmd(name, 9.0, NULL, vec![])).unwrap();
        }
        assert!(r.replies().is_empty());
        r.send(
            3,
            0,
            &cmd("getStreamLength", 9.0, NULL, vec![Amf0Value::string("s")]),
        )
        .unwrap();
        let replies = r.replies();
        assert_eq!(command_of(&replies[0].1).args, vec![Amf0Value::Number(0.0)]);
        r.send(3, 0, &cmd("seek", 10.0, NULL, vec![])).unwrap();
        let replies = r.replies();
        let c = command_of(&replies[0].1);
        assert_eq!((c.name.as_str(), c.transaction_id), ("_error", 10.0));
        assert_eq!(info_code(c), "NetConnection.Call.Failed");
        r.send(3, 0, &cmd("whatever", 0.0, NULL, vec![])).unwrap();
        assert!(r.replies().is_empty());
        assert!(r.events.is_empty());
    }

    #[test]
    fn ping_is_answered() {
        let mut r = raw();
        r.send(2, 0, &Message::UserControl(UserControl::PingRequest(1234)))
            .unwrap();
        let replies = r.replies();
        assert_eq!(
            replies[0].1,
            Message::UserControl(UserControl::PingResponse(1234))
        );
    }

    #[test]
    fn acknowledgements_follow_the_window() {
        let mut r = raw();
        let id = r.publish("s");
        r.send(2, 0, &Message::WindowAckSize(1000)).unwrap();
        let base = r.s.link.decoder().bytes_consumed();
        let mut acks = Vec::new();
        for i in 0..10 {
            r.media(msg_type::VIDEO, id, i, &[0u8; 300]).unwrap();
            for (h, m) in r.replies() {
                assert_eq!((h.csid, h.type_id), (2, msg_type::ACK));
                if let Message::Ack(seq) = m {
                    acks.push(seq);
                }
            }
        }
        // Each ack reports the total consumed, at least a window after the
        // previous one, and no window passes unacknowledged.
        let consumed = r.s.link.decoder().bytes_consumed();
        assert!(consumed - base > 3000);
        assert!(acks.len() >= 2, "{acks:?}");
        assert!(acks[0] >= 1000);
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 1000), "{acks:?}");
        assert!(consumed - u64::from(*acks.last().unwrap()) < 1000);
    }

    #[test]
    fn peer_chunk_size_and_abort_apply() {
        let mut r = raw();
        r.send(2, 0, &Message::SetChunkSize(4096)).unwrap();
        assert_eq!(r.s.link.decoder().chunk_size(), 4096);
        r.send(2, 0, &Message::Abort(6)).unwrap();
        let m = cmd("connect", 1.0, connect_object(&"a".repeat(3000)), vec![]);
        write_message(&m, 3, 0, 4096, &mut r.input);
        r.feed().unwrap();
        assert!(matches!(&r.events[0], ServerEvent::Connect(i) if i.app.len() == 3000));
    }

    #[test]
    fn out_chunk_size_is_clamped() {
        let cfg = ServerConfig {
            out_chunk_size: 1 << 30,
            ..ServerConfig::default()
        };
        assert_eq!(ServerSession::new(cfg).out_chunk_size(), 65536);
        let cfg = ServerConfig {
            out_chunk_size: 1,
            ..ServerConfig::default()
        };
        assert_eq!(ServerSession::new(cfg).out_chunk_size(), 128);
    }

    #[test]
    fn protocol_errors() {
        let mut r = raw();
        assert!(
            protocol_err(r.send(3, 0, &cmd("createStream", 2.0, NULL, vec![])))
                .contains("before connect")
        );

        let mut r = raw();
        assert!(
            protocol_err(r.send(3, 0, &cmd("connect", 1.0, NULL, vec![])))
                .contains("command object")
        );

        let mut r = raw();
        r.connect();
        protocol_err(r.send(3, 0, &cmd("connect", 1.0, connect_object("x"), vec![])));

        let mut r = raw();
        r.connect();
        assert!(protocol_err(r.send(
            5,
            1,
            &cmd("publish", 0.0, NULL, vec![Amf0Value::string("s")])
        ))
        .contains("never created"));

        let mut r = raw();
        r.connect();
        let id = r.create_stream();
        protocol_err(r.send(5, id, &cmd("publish", 0.0, NULL, vec![])));
        let mut r = raw();
        r.connect();
        let id = r.create_stream();
        protocol_err(r.send(5, id, &cmd("play", 0.0, NULL, vec![Amf0Value::Null])));

        let mut r = raw();
        let id = r.publish("s");
        assert!(
            protocol_err(r.send(5, id, &cmd("play", 0.0, NULL, vec![Amf0Value::string("s")])))
                .contains("in use")
        );

        let mut r = raw();
        let id = r.play("s");
        assert!(protocol_err(r.media(msg_type::VIDEO, id, 0, &[1])).contains("not publishing"));
        let mut r = raw();
        r.connect();
        protocol_err(r.media(msg_type::AUDIO, 0, 0, &[1]));

        let mut r = raw();
        r.send(3, 0, &cmd("connect", 1.0, connect_object("live"), vec![]))
            .unwrap();
        let flood: Result<(), SessionError> = (0..=MAX_HELD)
            .try_for_each(|i| r.send(3, 0, &cmd("nope", i as f64 + 2.0, NULL, vec![])));
        assert!(protocol_err(flood).contains("too many"));
    }

    #[test]
    fn chunk_message_and_handshake_errors() {
        let mut r = raw();
        let e = r.send(2, 0, &Message::SetChunkSize(0));
        assert!(matches!(e, Err(SessionError::Chunk(_))), "{e:?}");

        let mut r = raw();
        let h = MessageHeader {
            csid: 2,
            timestamp: 0,
            type_id: msg_type::WINDOW_ACK_SIZE,
            stream_id: 0,
        };
        chunk::encode_message(&h, &[0, 1], 128, &mut r.input);
        let e = r.feed();
        assert!(
            matches!(
                e,
                Err(SessionError::Message(MessageError::Truncated {
                    type_id: 5
                }))
            ),
            "{e:?}"
        );

        let mut r = raw();
        let h = MessageHeader {
            csid: 3,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id: 0,
        };
        chunk::encode_message(&h, &[0x42], 128, &mut r.input);
        let e = r.feed();
        assert!(
            matches!(e, Err(SessionError::Message(MessageError::Amf0(_)))),
            "{e:?}"
        );
        assert!(e.unwrap_err().to_string().starts_with("message:"));

        let mut s = ServerSession::new(ServerConfig::default());
        let mut input = BytesMut::from(&[0xffu8; 1537][..]);
        let e = s.on_bytes(&mut input, &mut BytesMut::new(), &mut Vec::new());
        assert!(matches!(e, Err(SessionError::Handshake(_))), "{e:?}");
        assert!(!s.is_handshake_done());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_after_handshake_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            connected in any::<bool>(),
            split in 1usize..512,
        ) {
            let mut r = raw();
            if connected {
                r.publish("s");
            }
            for piece in data.chunks(split) {
                r.input.extend_from_slice(piece);
                if r.feed().is_err() {
                    break;
                }
            }
        }

        #[test]
        fn arbitrary_bytes_in_handshake_never_panic(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let mut s = ServerSession::with_random(ServerConfig::default(), seeded(SEED));
            let mut input = BytesMut::from(&data[..]);
            let _ = s.on_bytes(&mut input, &mut BytesMut::new(), &mut Vec::new());
        }
    }
}
