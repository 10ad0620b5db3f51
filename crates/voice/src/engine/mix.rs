//! Mixing on the tick: the gated microphone (into the guilds it is routed to) and every playing
//! sound, per distinct mix (the connections that hear exactly the same thing share one mix and
//! one Opus encode), with gains and a limiter; plus the local monitor mix.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

use bevy_ecs::prelude::*;

use super::Now;
use super::components::*;
use super::dave::{CallMembers, Dave};
use super::transmit::can_transmit;
use voxboard_audio::FRAME_LEN;
use voxboard_audio::mixer::{Gate, Limiter, add_frame, advance};
use voxboard_audio::opus::{MAX_PACKET, OpusEncoder};

/// Where microphone frames come from (cpal capture in the app, a synthetic source in tests).
/// `read_frame` never blocks: `false` means no full frame was available.
pub trait MicSource: Send {
    fn read_frame(&mut self, out: &mut [f32]) -> bool;
}

/// Where the monitor mix goes (a cpal output in the app). `push_frame` never blocks.
pub trait MonitorSink: Send {
    fn push_frame(&mut self, frame: &[f32]) -> bool;
}

/// A `Send` value made `Sync` by exclusive access: it is only ever reached through `&mut`
/// (`get_mut`), so the Mutex is never locked or contended. Audio device handles (ring-buffer
/// ends) are `Send` but not `Sync`, and ECS resources and commands must be both.
pub struct Exclusive<T: ?Sized>(Mutex<Box<T>>);

impl<T: ?Sized> Exclusive<T> {
    pub fn new(value: Box<T>) -> Self {
        Exclusive(Mutex::new(value))
    }
    pub fn get_mut(&mut self) -> &mut T {
        match self.0.get_mut() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Gains and push-to-talk, set by commands.
#[derive(Resource, Debug, Clone)]
pub struct MixSettings {
    pub master_gain: f32,
    pub mic_gain: f32,
    pub push_to_talk: bool,
    /// The guilds that hear the microphone (the routing matrix's microphone row).
    pub mic_target: Target,
    pub monitor_gain: f32,
    pub monitor_includes_mic: bool,
}

impl Default for MixSettings {
    fn default() -> Self {
        Self {
            master_gain: 1.0,
            mic_gain: 1.0,
            push_to_talk: false,
            mic_target: Target::All,
            monitor_gain: 1.0,
            monitor_includes_mic: false,
        }
    }
}

/// The microphone as the tick sees it: this tick's gated frame and its level.
#[derive(Resource, Default)]
pub struct MicInput {
    source: Option<Exclusive<dyn MicSource>>,
    frame: Vec<f32>,
    gate: Gate,
    /// Whether this tick's mix includes the microphone.
    pub active: bool,
    /// Peak of the last captured frame (before the gate), for a level meter.
    pub level: f32,
}

impl MicInput {
    pub fn set_source(&mut self, source: Option<Exclusive<dyn MicSource>>) {
        self.source = source;
    }
    pub fn is_present(&self) -> bool {
        self.source.is_some()
    }
}

#[derive(Resource, Default)]
pub struct MonitorOutput {
    sink: Option<Exclusive<dyn MonitorSink>>,
    limiter: Limiter,
    buffer: Vec<f32>,
}

impl MonitorOutput {
    pub fn set_sink(&mut self, sink: Option<Exclusive<dyn MonitorSink>>) {
        self.sink = sink;
    }
}

/// One distinct mix this tick.
pub struct MixGroup {
    key: u64,
    guild_id: u64,
    guild_gain: f32,
    /// Part of the key, so every connection of the group agrees.
    hears_mic: bool,
    bitrate: u32,
    pub opus: Vec<u8>,
    pub len: usize,
    /// The oldest not-yet-sent play command in this mix, for latency stats.
    pub fresh_since: Option<Instant>,
}

/// What one stream of audio carries from tick to tick: the Opus encoder's prediction state and
/// the limiter's gain. Each distinct mix needs its own; sharing one encoder between two mixes
/// would interleave two signals through one predictor.
struct MixStream {
    /// libopus state is not `Sync`; the Mutex is never locked (`get_mut` through `ResMut`).
    encoder: Option<Mutex<OpusEncoder>>,
    limiter: Limiter,
}

impl MixStream {
    fn new(bitrate: u32) -> Self {
        let encoder = OpusEncoder::new(bitrate)
            .map_err(|e| tracing::error!("Opus encoder unavailable: {e}"))
            .ok()
            .map(Mutex::new);
        Self {
            encoder,
            limiter: Limiter::default(),
        }
    }
}

#[derive(Resource)]
pub struct Mixer {
    bitrate: u32,
    pub groups: Vec<MixGroup>,
    pub group_of: HashMap<Entity, usize>,
    /// Stream state by mix key; a mix whose key changes (a sound started or ended) inherits the
    /// stream its connections had, so their receivers hear one continuous encoder.
    streams: HashMap<u64, MixStream>,
    last_key_of: HashMap<Entity, u64>,
    buffer: Vec<f32>,
}

impl Mixer {
    pub fn new(bitrate: u32) -> Self {
        Self {
            bitrate,
            groups: Vec::new(),
            group_of: HashMap::new(),
            streams: HashMap::new(),
            last_key_of: HashMap::new(),
            buffer: vec![0.0; FRAME_LEN],
        }
    }

    /// Gives every group this tick a stream: its own from last tick, the one its connections
    /// had, or a fresh one. Streams no group uses any more are dropped.
    fn assign_streams(&mut self) {
        for group in &self.groups {
            if self.streams.contains_key(&group.key) {
                continue;
            }
            let inherited = self
                .group_of
                .iter()
                .filter(|(_, i)| self.groups[**i].key == group.key)
                .filter_map(|(e, _)| self.last_key_of.get(e))
                .find(|old| !self.groups.iter().any(|g| g.key == **old))
                .and_then(|old| self.streams.remove(old));
            let stream = inherited.unwrap_or_else(|| MixStream::new(group.bitrate));
            self.streams.insert(group.key, stream);
        }
        let groups = &self.groups;
        self.streams
            .retain(|k, _| groups.iter().any(|g| g.key == *k));
        self.last_key_of = self
            .group_of
            .iter()
            .map(|(e, i)| (*e, self.groups[*i].key))
            .collect();
    }

    /// The mix a connection hears this tick, if any.
    pub fn frame_for(&self, entity: Entity) -> Option<&MixGroup> {
        self.group_of
            .get(&entity)
            .map(|&i| &self.groups[i])
            .filter(|g| g.len > 0)
    }
}

/// Captures this tick's microphone frame and runs the push-to-talk gate.
pub fn read_mic(mut mic: ResMut<MicInput>, settings: Res<MixSettings>) {
    let mic = mic.as_mut();
    let Some(source) = mic.source.as_mut().map(Exclusive::get_mut) else {
        mic.active = false;
        mic.level = 0.0;
        return;
    };
    mic.frame.resize(FRAME_LEN, 0.0);
    if !source.read_frame(&mut mic.frame) {
        mic.frame.fill(0.0);
    }
    mic.level = mic.frame.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let gain = settings.mic_gain;
    if gain != 1.0 {
        mic.frame.iter_mut().for_each(|s| *s *= gain);
    }
    // The frame in which the gate closes still carries its ramp down: include it.
    let was_open = !mic.gate.is_closed();
    mic.gate.apply(&mut mic.frame, settings.push_to_talk);
    mic.active = settings.push_to_talk || was_open;
}

/// Takes this tick's frame of every streamed sound out of its ring (never waiting), so the
/// mixes below can read it as often as they need.
pub fn load_streams(mut playbacks: Query<&mut Playback>) {
    for mut p in &mut playbacks {
        if p.cursor.stream().is_some() {
            p.cursor.load();
        }
    }
}

/// Mixes and encodes each distinct mix once, however many connections hear it.
#[allow(clippy::type_complexity)]
pub fn mix_and_encode(
    mut mixer: ResMut<Mixer>,
    mut conns: Query<(
        Entity,
        &VoiceConn,
        &ConnPhase,
        &Transport,
        &GuildGain,
        &mut Dave,
        &CallMembers,
    )>,
    playbacks: Query<(Entity, &Playback, &Target)>,
    mic: Res<MicInput>,
    settings: Res<MixSettings>,
    gateway: Res<super::MainGatewayState>,
    now: Res<Now>,
) {
    let mixer = mixer.as_mut();
    mixer.group_of.clear();
    let mut used = 0;
    if playbacks.is_empty() && !mic.active {
        mixer.groups.clear();
        mixer.streams.clear();
        mixer.last_key_of.clear();
        return;
    }
    for (entity, conn, phase, transport, gain, mut dave, members) in &mut conns {
        if !can_transmit(phase, transport) || !dave.media_ready(members, now.0) {
            continue;
        }
        // The key names what this connection hears: its sounds, its gain, the microphone, and
        // the bitrate (capped by the channel's, where Discord told us).
        let bitrate =
            channel_bitrate(&gateway, conn).map_or(mixer.bitrate, |b| b.min(mixer.bitrate));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let hears_mic = mic.active && settings.mic_target.includes(conn.guild_id);
        let mut any = hears_mic;
        hears_mic.hash(&mut hasher);
        gain.0.to_bits().hash(&mut hasher);
        bitrate.hash(&mut hasher);
        for (pe, _, target) in &playbacks {
            if target.includes(conn.guild_id) {
                pe.hash(&mut hasher);
                any = true;
            }
        }
        if !any {
            continue;
        }
        let key = hasher.finish();
        let index = match mixer.groups[..used].iter().position(|g| g.key == key) {
            Some(i) => i,
            None => {
                let group = MixGroup {
                    key,
                    guild_id: conn.guild_id,
                    guild_gain: gain.0,
                    hears_mic,
                    bitrate,
                    opus: vec![0; MAX_PACKET],
                    len: 0,
                    fresh_since: None,
                };
                if used == mixer.groups.len() {
                    mixer.groups.push(group);
                } else {
                    let opus = std::mem::take(&mut mixer.groups[used].opus);
                    mixer.groups[used] = MixGroup { opus, ..group };
                }
                used += 1;
                used - 1
            }
        };
        mixer.group_of.insert(entity, index);
    }
    mixer.groups.truncate(used);
    mixer.assign_streams();

    let Mixer {
        groups,
        buffer,
        streams,
        ..
    } = mixer;
    for group in groups.iter_mut() {
        let Some(stream) = streams.get_mut(&group.key) else {
            continue;
        };
        let buffer = buffer.as_mut_slice();
        buffer.fill(0.0);
        let gain = settings.master_gain * group.guild_gain;
        for (_, p, target) in &playbacks {
            if target.includes(group.guild_id) {
                add_frame(buffer, &p.cursor, gain);
                if !p.first_sent {
                    group.fresh_since = Some(
                        group
                            .fresh_since
                            .map_or(p.issued_at, |t| t.min(p.issued_at)),
                    );
                }
            }
        }
        if group.hears_mic {
            for (out, m) in buffer.iter_mut().zip(&mic.frame) {
                *out += m * group.guild_gain;
            }
        }
        stream.limiter.process(buffer);
        let encoder = stream.encoder.as_mut().and_then(|e| e.get_mut().ok());
        group.len = match encoder.map(|e| e.encode(buffer, &mut group.opus)) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                tracing::warn!("Opus encode failed: {e}");
                0
            }
            None => 0,
        };
    }
}

/// The channel's bitrate from GUILD_CREATE, if known.
fn channel_bitrate(gateway: &super::MainGatewayState, conn: &VoiceConn) -> Option<u32> {
    let guild = gateway.guilds.get(&conn.guild_id)?;
    guild
        .channels
        .iter()
        .find(|c| c.id == conn.channel_id)?
        .bitrate
        .filter(|b| *b >= 8_000)
}

/// What goes out, also to the streamer's headphones: every sound (and the mic, if chosen).
pub fn feed_monitor(
    mut monitor: ResMut<MonitorOutput>,
    playbacks: Query<&Playback>,
    mic: Res<MicInput>,
    settings: Res<MixSettings>,
) {
    let monitor = monitor.as_mut();
    let Some(sink) = monitor.sink.as_mut().map(Exclusive::get_mut) else {
        return;
    };
    monitor.buffer.resize(FRAME_LEN, 0.0);
    let buffer = monitor.buffer.as_mut_slice();
    buffer.fill(0.0);
    let gain = settings.master_gain * settings.monitor_gain;
    for p in &playbacks {
        add_frame(buffer, &p.cursor, gain);
    }
    if mic.active && settings.monitor_includes_mic {
        for (out, m) in buffer.iter_mut().zip(&mic.frame) {
            *out += m * settings.monitor_gain;
        }
    }
    monitor.limiter.process(buffer);
    let _ = sink.push_frame(buffer);
}

/// Moves each sound one frame on, if anyone can hear it; ends finished ones.
pub fn advance_playbacks(
    mut commands: Commands,
    mut playbacks: Query<(Entity, &mut Playback, &Target)>,
    mut conns: Query<(&VoiceConn, &ConnPhase, &Transport, &mut Dave, &CallMembers)>,
    monitor: Res<MonitorOutput>,
    now: Res<Now>,
) {
    for (entity, mut p, target) in &mut playbacks {
        let local = matches!(target, Target::Monitor) && monitor.sink.is_some();
        let mut targeted = local;
        let mut audible = local;
        for (conn, phase, transport, mut dave, members) in &mut conns {
            if target.includes(conn.guild_id) && !phase.is_over() {
                targeted = true;
                audible |= can_transmit(phase, transport) && dave.media_ready(members, now.0);
            }
        }
        // A sound waits while its connections reconnect or wait for keys, so nothing is
        // lost; with no live connection at all it ends.
        let mut playing = true;
        if audible {
            p.first_sent = true;
            playing = advance(&mut p.cursor);
        } else if p.cursor.fade_out.is_some() {
            playing = false; // stopped while nobody could hear it: nothing to fade
        }
        if !targeted || !playing {
            if let Some(done) = p.done.take() {
                let _ = done.send(());
            }
            commands.entity(entity).despawn();
        }
    }
}

impl MicSource for voxboard_audio::capture::MicReader {
    fn read_frame(&mut self, out: &mut [f32]) -> bool {
        match <&mut [f32; FRAME_LEN]>::try_from(out) {
            Ok(frame) => voxboard_audio::capture::MicReader::read_frame(self, frame),
            Err(_) => false,
        }
    }
}

impl MonitorSink for voxboard_audio::monitor::MonitorWriter {
    fn push_frame(&mut self, frame: &[f32]) -> bool {
        voxboard_audio::monitor::MonitorWriter::push_frame(self, frame)
    }
}
