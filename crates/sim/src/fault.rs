//! Fault injection: what a misbehaving instrument or line does (hang up, garbage, a missing
//! terminator, a slow reply, a flood, a lying block header, a different unit after a reconnect,
//! errors in the queue), and when (after K replies, on the next message containing a text, or at
//! once through a [`FaultHandle`]) so that tests never depend on timing.
//!
//! Text form (the CLI's `--fault`): `KIND[=VALUE][,OPTION]…` with
//!
//! | kind | effect |
//! |---|---|
//! | `disconnect=30s[,new-path][,serial=S]` | hang up for 30 s (pty: close and reopen, `new-path` forces another device name; TCP: close the connection and the listener), come back as serial `S` |
//! | `garbage[=N]` | N random bytes (default 32, no CR/LF) and the terminator instead of the reply |
//! | `unterminated` | the reply without its terminator (and without EOI) |
//! | `slow=2s` | the reply 2 s late |
//! | `flood=10MB` | 10 MB without a terminator instead of the reply (`B`, `KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`; a bare number is MB) |
//! | `block=short\|huge\|indefinite` | `#3100` + 50 bytes / `#9999999999` + 16 bytes / `#0` + 24 bytes without END, instead of the reply |
//! | `silent` | no reply at all (stops answering mid-query) |
//! | `identity=S` | the instrument reports serial `S` from now on |
//! | `errors=N` | N errors queued the way the model reports errors |
//!
//! Options: `after=K` (fire once K replies have been sent since arming; reply faults then hit
//! reply K+1; the default is `after=0`), `every=K` (like `after`, re-armed after firing),
//! `on=TEXT` (fire on the next message containing TEXT, case-insensitive; must come last, TEXT
//! may contain commas), `addr=N` (on a bus: only instrument N).

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::bus::MAX_GPIB_ADDRESS;
use crate::id::SpecError;
use crate::reply::Reply;
use crate::rng::Xoshiro256;
use crate::wire::{Chunk, Emission};

/// Default length of a garbage reply.
const DEFAULT_GARBAGE: usize = 32;

/// Largest flood accepted, bytes (a typo should not make a 1 TB stream).
pub const MAX_FLOOD: u64 = 16 << 30;

/// A broken IEEE 488.2 definite-length block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadBlock {
    /// `#3100` followed by only 50 bytes.
    Short,
    /// `#9999999999`: a header claiming 999 999 999 bytes, then 16 bytes and LF.
    Huge,
    /// `#0` (indefinite length) and 24 bytes, never terminated.
    Indefinite,
}

impl BadBlock {
    fn as_str(&self) -> &'static str {
        match self {
            BadBlock::Short => "short",
            BadBlock::Huge => "huge",
            BadBlock::Indefinite => "indefinite",
        }
    }

    /// The bytes sent and whether EOI ends them.
    fn bytes(&self) -> (Vec<u8>, bool) {
        match self {
            BadBlock::Short => {
                let mut b = b"#3100".to_vec();
                b.extend(std::iter::repeat_n(0xA5, 50));
                (b, true)
            }
            BadBlock::Huge => {
                let mut b = b"#9999999999".to_vec();
                b.extend(std::iter::repeat_n(0x5A, 16));
                b.push(b'\n');
                (b, true)
            }
            BadBlock::Indefinite => {
                let mut b = b"#0".to_vec();
                b.extend(std::iter::repeat_n(0x3C, 24));
                (b, false)
            }
        }
    }
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The line goes away for `down`, then comes back (a new pty, optionally at a new path; a
    /// new TCP listener), optionally as another unit.
    Disconnect {
        /// How long the instrument is gone.
        down: Duration,
        /// Force a different device path on return (pty only).
        new_path: bool,
        /// The serial number the instrument reports after its return.
        serial: Option<String>,
    },
    /// Random bytes (no CR or LF) and the model's terminator instead of the reply.
    Garbage {
        /// Number of random bytes.
        len: usize,
    },
    /// The reply without its terminator and without EOI.
    Unterminated,
    /// The reply, late.
    Slow {
        /// Extra delay.
        delay: Duration,
    },
    /// Bytes without any terminator instead of the reply.
    Flood {
        /// How many.
        bytes: u64,
    },
    /// A broken block instead of the reply.
    Block(BadBlock),
    /// No reply at all.
    Silent,
    /// The instrument reports another serial number from now on.
    Identity {
        /// The new serial number.
        serial: String,
    },
    /// Errors queued in the instrument's error reporting.
    Errors {
        /// How many.
        count: u32,
    },
}

impl FaultKind {
    /// True for faults that change a reply rather than happen at a moment.
    fn alters_reply(&self) -> bool {
        matches!(
            self,
            FaultKind::Garbage { .. }
                | FaultKind::Unterminated
                | FaultKind::Slow { .. }
                | FaultKind::Flood { .. }
                | FaultKind::Block(_)
                | FaultKind::Silent
        )
    }
}

/// When a fault fires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Once this many replies have been sent since the fault was armed: a reply fault hits the
    /// next reply, an event fault happens at once (`AfterReplies(0)`: immediately).
    AfterReplies(u64),
    /// On the next message containing this text (ASCII case-insensitive): a reply fault hits
    /// that message's reply; a disconnect swallows the message.
    OnMessage(String),
}

/// One armed fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fault {
    /// What happens.
    pub kind: FaultKind,
    /// When.
    pub trigger: Trigger,
    /// On a bus, only this instrument's messages and replies count (and it receives errors and
    /// identity changes); ignored for a lone instrument.
    pub address: Option<u8>,
    /// Re-arm after firing (`every=K`).
    pub repeat: bool,
}

impl Fault {
    /// `kind` at the next reply (reply faults) or at once (events).
    pub fn now(kind: FaultKind) -> Self {
        Self::after(0, kind)
    }

    /// `kind` once `replies` replies have been sent.
    pub fn after(replies: u64, kind: FaultKind) -> Self {
        Self {
            kind,
            trigger: Trigger::AfterReplies(replies),
            address: None,
            repeat: false,
        }
    }

    /// `kind` on the next message containing `text`.
    pub fn on(text: impl Into<String>, kind: FaultKind) -> Self {
        Self {
            kind,
            trigger: Trigger::OnMessage(text.into()),
            address: None,
            repeat: false,
        }
    }

    /// The same fault restricted to the instrument at `address`.
    pub fn at(mut self, address: u8) -> Self {
        self.address = Some(address);
        self
    }

    /// The same fault, re-armed each time it fires.
    pub fn repeating(mut self) -> Self {
        self.repeat = true;
        self
    }
}

fn fault_error(text: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Fault {
        text: text.to_owned(),
        reason: reason.into(),
    }
}

fn parse_duration(text: &str, value: &str) -> Result<Duration, SpecError> {
    humantime::parse_duration(value.trim())
        .map_err(|e| fault_error(text, format!("`{value}` is not a duration like 30s: {e}")))
}

fn parse_size(text: &str, value: &str) -> Result<u64, SpecError> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| fault_error(text, format!("`{value}` is not a size like 10MB")))?;
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "MB" => 1_000_000,
        "B" => 1,
        "KB" => 1_000,
        "GB" => 1_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        _ => return Err(fault_error(text, format!("unknown size unit in `{value}`"))),
    };
    n.checked_mul(scale)
        .filter(|b| *b <= MAX_FLOOD)
        .ok_or_else(|| fault_error(text, format!("`{value}` is more than 16 GiB")))
}

fn parse_serial(text: &str, value: &str) -> Result<String, SpecError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b';');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(fault_error(
            text,
            "a serial number is printable ASCII without spaces, commas or semicolons",
        ))
    }
}

fn parse_count(text: &str, value: &str) -> Result<u64, SpecError> {
    value
        .trim()
        .parse()
        .map_err(|_| fault_error(text, format!("`{value}` is not a count")))
}

impl FromStr for Fault {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // `on=` takes the rest of the text, commas included.
        let (head, on) = match text.find(",on=") {
            Some(i) => (
                text.get(..i).unwrap_or_default(),
                text.get(i + 4..).map(str::to_owned),
            ),
            None => match text.strip_prefix("on=") {
                Some(_) => return Err(fault_error(text, "the fault kind comes first")),
                None => (text, None),
            },
        };
        let mut parts = head.split(',').map(str::trim);
        let first = parts.next().unwrap_or_default();
        let (name, value) = match first.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (first, None),
        };
        let need = |what: &str| {
            value.ok_or_else(|| fault_error(text, format!("`{name}` needs a value: {what}")))
        };
        let mut kind = match name.to_ascii_lowercase().as_str() {
            "disconnect" => FaultKind::Disconnect {
                down: parse_duration(text, need("a duration like 30s")?)?,
                new_path: false,
                serial: None,
            },
            "garbage" => FaultKind::Garbage {
                len: match value {
                    Some(v) => usize::try_from(parse_count(text, v)?)
                        .ok()
                        .filter(|n| *n <= 1 << 20)
                        .ok_or_else(|| fault_error(text, "at most 1 MiB of garbage"))?,
                    None => DEFAULT_GARBAGE,
                },
            },
            "unterminated" => FaultKind::Unterminated,
            "slow" => FaultKind::Slow {
                delay: parse_duration(text, need("a duration like 2s")?)?,
            },
            "flood" => FaultKind::Flood {
                bytes: parse_size(text, need("a size like 10MB")?)?,
            },
            "block" => FaultKind::Block(match need("short, huge or indefinite")? {
                "short" => BadBlock::Short,
                "huge" => BadBlock::Huge,
                "indefinite" => BadBlock::Indefinite,
                other => {
                    return Err(fault_error(
                        text,
                        format!("block `{other}` is not short, huge or indefinite"),
                    ));
                }
            }),
            "silent" => FaultKind::Silent,
            "identity" => FaultKind::Identity {
                serial: parse_serial(text, need("a serial number")?)?,
            },
            "errors" => FaultKind::Errors {
                count: u32::try_from(parse_count(text, need("a count")?)?)
                    .ok()
                    .filter(|n| *n <= 1000)
                    .ok_or_else(|| fault_error(text, "at most 1000 errors"))?,
            },
            "" => return Err(fault_error(text, "no fault kind")),
            other => return Err(fault_error(text, format!("unknown fault kind `{other}`"))),
        };
        if value.is_some() && matches!(kind, FaultKind::Unterminated | FaultKind::Silent) {
            return Err(fault_error(text, format!("`{name}` takes no value")));
        }
        let mut fault = Fault::now(kind.clone());
        let mut trigger_set = false;
        for part in parts {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (part, None),
            };
            match (key, value, &mut kind) {
                ("new-path", None, FaultKind::Disconnect { new_path, .. }) => *new_path = true,
                ("serial", Some(v), FaultKind::Disconnect { serial, .. }) => {
                    *serial = Some(parse_serial(text, v)?);
                }
                ("after" | "every", Some(v), _) => {
                    if trigger_set {
                        return Err(fault_error(text, "only one of after, every and on"));
                    }
                    trigger_set = true;
                    fault.trigger = Trigger::AfterReplies(parse_count(text, v)?);
                    fault.repeat = key == "every";
                }
                ("addr", Some(v), _) => {
                    let a = v
                        .parse::<u8>()
                        .ok()
                        .filter(|a| *a <= MAX_GPIB_ADDRESS)
                        .ok_or_else(|| fault_error(text, format!("address `{v}` is not 0–30")))?;
                    fault.address = Some(a);
                }
                _ => return Err(fault_error(text, format!("unknown option `{part}`"))),
            }
        }
        if let Some(on) = on {
            if trigger_set {
                return Err(fault_error(text, "only one of after, every and on"));
            }
            if on.is_empty() {
                return Err(fault_error(text, "`on=` needs a text"));
            }
            fault.trigger = Trigger::OnMessage(on);
        }
        fault.kind = kind;
        Ok(fault)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::Disconnect {
                down,
                new_path,
                serial,
            } => {
                write!(f, "disconnect={}", humantime::format_duration(*down))?;
                if *new_path {
                    f.write_str(",new-path")?;
                }
                if let Some(s) = serial {
                    write!(f, ",serial={s}")?;
                }
            }
            FaultKind::Garbage { len } => write!(f, "garbage={len}")?,
            FaultKind::Unterminated => f.write_str("unterminated")?,
            FaultKind::Slow { delay } => write!(f, "slow={}", humantime::format_duration(*delay))?,
            FaultKind::Flood { bytes } => write!(f, "flood={bytes}B")?,
            FaultKind::Block(b) => write!(f, "block={}", b.as_str())?,
            FaultKind::Silent => f.write_str("silent")?,
            FaultKind::Identity { serial } => write!(f, "identity={serial}")?,
            FaultKind::Errors { count } => write!(f, "errors={count}")?,
        }
        if let Some(a) = self.address {
            write!(f, ",addr={a}")?;
        }
        match &self.trigger {
            Trigger::AfterReplies(k) if self.repeat => write!(f, ",every={k}"),
            Trigger::AfterReplies(k) => write!(f, ",after={k}"),
            Trigger::OnMessage(text) => write!(f, ",on={text}"),
        }
    }
}

/// A hang-up: the line goes away, then comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outage {
    /// How long the line is gone.
    pub(crate) down: Duration,
    /// A pty comes back at another device path.
    pub(crate) new_path: bool,
    /// The serial number the instruments report once the line is back.
    pub(crate) serial: Option<String>,
}

/// Something that happens at a moment rather than to a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Disconnect(Outage),
    Errors { count: u32, address: Option<u8> },
    Identity { serial: String, address: Option<u8> },
}

impl Event {
    /// The instrument an error or identity event is for, if it names one.
    pub(crate) fn address(&self) -> Option<u8> {
        match self {
            Event::Errors { address, .. } | Event::Identity { address, .. } => *address,
            Event::Disconnect(_) => None,
        }
    }
}

/// Applies every event but hang-ups with `apply`, and returns the first hang-up.
pub(crate) fn take_outage(
    events: impl IntoIterator<Item = Event>,
    mut apply: impl FnMut(Event),
) -> Option<Outage> {
    let mut outage = None;
    for e in events {
        match e {
            Event::Disconnect(o) => {
                outage.get_or_insert(o);
            }
            other => apply(other),
        }
    }
    outage
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    /// Replies counted since arming.
    seen: u64,
}

#[derive(Debug, Default)]
struct State {
    armed: Vec<Armed>,
    fired: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the server when a fault is armed, so an immediate one fires while it is idle.
    wake: Notify,
    fired: watch::Sender<u64>,
}

/// Arms faults on a running simulator and observes them firing. Clones share the simulator.
#[derive(Debug, Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl Default for FaultHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultHandle {
    /// A handle with nothing armed (a server makes its own; this is for driving a station by
    /// hand).
    pub fn new() -> Self {
        let (fired, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                fired,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent (every change is
        // one push or remove), so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Arms `fault`.
    pub fn arm(&self, fault: Fault) {
        self.lock().armed.push(Armed { fault, seen: 0 });
        self.shared.wake.notify_one();
    }

    /// Arms `kind` to fire now: at the next reply, or at once for events.
    pub fn inject(&self, kind: FaultKind) {
        self.arm(Fault::now(kind));
    }

    /// Faults armed and not yet fired (repeating ones stay armed).
    pub fn armed(&self) -> usize {
        self.lock().armed.len()
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.lock().armed.clear();
    }

    /// How many times faults have fired.
    pub fn fired(&self) -> u64 {
        self.lock().fired
    }

    /// Waits until at least `n` faults have fired in total.
    pub async fn wait_fired(&self, n: u64) {
        let mut rx = self.shared.fired.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|fired| *fired >= n).await;
    }

    /// Resolves when a fault has been armed since the last call (for the server loop).
    pub(crate) async fn armed_signal(&self) {
        self.shared.wake.notified().await;
    }

    fn record_fired(&self, state: &mut State, count: u64) {
        if count > 0 {
            state.fired += count;
            self.shared.fired.send_replace(state.fired);
        }
    }

    /// Fires the armed faults that `fires` picks for the instrument at `address` (it may count a
    /// reply on the way): each fired fault is counted and re-armed when `fires` says so, and the
    /// reply faults and events they make are returned.
    fn sweep(
        &self,
        address: Option<u8>,
        mut fires: impl FnMut(&mut Armed) -> Option<bool>,
    ) -> (Vec<FaultKind>, Vec<Event>) {
        let mut state = self.lock();
        let mut kinds = Vec::new();
        let mut events = Vec::new();
        let mut fired = 0;
        state.armed.retain_mut(|a| match fires(a) {
            None => true,
            Some(rearm) => {
                fired += 1;
                fire(&a.fault, address, &mut kinds, &mut events);
                rearm
            }
        });
        self.record_fired(&mut state, fired);
        (kinds, events)
    }

    /// Faults triggered by an incoming message for the instrument at `address`: reply faults
    /// for its reply, and events.
    pub(crate) fn on_message(
        &self,
        address: Option<u8>,
        message: &[u8],
    ) -> (Vec<FaultKind>, Vec<Event>) {
        self.sweep(address, |a| {
            let Trigger::OnMessage(text) = &a.fault.trigger else {
                return None;
            };
            let hit =
                matches_address(a.fault.address, address) && contains(message, text.as_bytes());
            hit.then_some(a.fault.repeat)
        })
    }

    /// A reply is about to be sent by the instrument at `address`: the reply faults that hit it,
    /// and the events due once it has been sent.
    pub(crate) fn on_reply(&self, address: Option<u8>) -> (Vec<FaultKind>, Vec<Event>) {
        self.sweep(address, |a| {
            let Trigger::AfterReplies(k) = a.fault.trigger else {
                return None;
            };
            if !matches_address(a.fault.address, address) {
                return None;
            }
            let due = if a.fault.kind.alters_reply() {
                let due = a.seen >= k;
                a.seen += 1;
                due
            } else {
                a.seen += 1;
                a.seen >= k
            };
            if !due {
                return None;
            }
            a.seen = 0;
            Some(a.fault.repeat)
        })
    }

    /// Event faults whose reply count is already reached (`after=0` ones right after arming).
    pub(crate) fn due_events(&self) -> Vec<Event> {
        self.sweep(None, |a| {
            let Trigger::AfterReplies(k) = a.fault.trigger else {
                return None;
            };
            if a.fault.kind.alters_reply() || a.seen < k {
                return None;
            }
            a.seen = 0;
            // A repeating immediate event would fire forever; it re-arms only with a count.
            Some(a.fault.repeat && k > 0)
        })
        .1
    }
}

fn matches_address(wanted: Option<u8>, actual: Option<u8>) -> bool {
    match (wanted, actual) {
        (Some(w), Some(a)) => w == a,
        _ => true,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn fire(fault: &Fault, address: Option<u8>, kinds: &mut Vec<FaultKind>, events: &mut Vec<Event>) {
    let address = fault.address.or(address);
    match &fault.kind {
        FaultKind::Disconnect {
            down,
            new_path,
            serial,
        } => events.push(Event::Disconnect(Outage {
            down: *down,
            new_path: *new_path,
            serial: serial.clone(),
        })),
        FaultKind::Errors { count } => events.push(Event::Errors {
            count: *count,
            address,
        }),
        FaultKind::Identity { serial } => events.push(Event::Identity {
            serial: serial.clone(),
            address,
        }),
        kind => kinds.push(kind.clone()),
    }
}

/// Applies reply faults to `reply`. `terminator` is what ends the model's replies; `seed` makes
/// garbage reproducible.
pub(crate) fn apply(reply: Reply, kinds: &[FaultKind], terminator: &[u8], seed: u64) -> Emission {
    let mut emission = Emission::from(reply);
    for kind in kinds {
        match kind {
            FaultKind::Garbage { len } => {
                let mut rng = Xoshiro256::from_seed(seed);
                let mut data: Vec<u8> = std::iter::repeat_with(|| rng.next_u64().to_le_bytes())
                    .flatten()
                    .filter(|b| *b != b'\n' && *b != b'\r')
                    .take(*len)
                    .collect();
                data.extend_from_slice(terminator);
                emission.chunks = vec![Chunk::Bytes { data, end: true }];
            }
            FaultKind::Unterminated => {
                for chunk in &mut emission.chunks {
                    if let Chunk::Bytes { end, .. } = chunk {
                        *end = false;
                    }
                }
                if let Some(Chunk::Bytes { data, .. }) = emission.chunks.last_mut() {
                    while data.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        data.pop();
                    }
                }
            }
            FaultKind::Slow { delay } => {
                emission.delay = emission.delay.saturating_add(*delay);
            }
            FaultKind::Flood { bytes } => {
                emission.chunks = vec![Chunk::Fill { len: *bytes }];
            }
            FaultKind::Block(b) => {
                let (data, end) = b.bytes();
                emission.chunks = vec![Chunk::Bytes { data, end }];
            }
            FaultKind::Silent => emission.chunks.clear(),
            FaultKind::Disconnect { .. }
            | FaultKind::Identity { .. }
            | FaultKind::Errors { .. } => {}
        }
    }
    emission
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Fault {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            parse("disconnect=30s,new-path,serial=SIM9,after=3"),
            Fault::after(
                3,
                FaultKind::Disconnect {
                    down: Duration::from_secs(30),
                    new_path: true,
                    serial: Some("SIM9".into())
                }
            )
        );
        assert_eq!(parse("garbage"), Fault::now(FaultKind::Garbage { len: 32 }));
        assert_eq!(parse("garbage=5").kind, FaultKind::Garbage { len: 5 });
        assert_eq!(parse("unterminated").kind, FaultKind::Unterminated);
        assert_eq!(
            parse("slow=1500ms").kind,
            FaultKind::Slow {
                delay: Duration::from_millis(1500)
            }
        );
        assert_eq!(
            parse("flood=10").kind,
            FaultKind::Flood { bytes: 10_000_000 }
        );
        assert_eq!(
            parse("flood=2MiB").kind,
            FaultKind::Flood { bytes: 2 << 20 }
        );
        assert_eq!(parse("flood=7B").kind, FaultKind::Flood { bytes: 7 });
        assert_eq!(parse("block=short").kind, FaultKind::Block(BadBlock::Short));
        assert_eq!(parse("block=huge").kind, FaultKind::Block(BadBlock::Huge));
        assert_eq!(
            parse("block=indefinite").kind,
            FaultKind::Block(BadBlock::Indefinite)
        );
        assert_eq!(parse("silent").kind, FaultKind::Silent);
        assert_eq!(
            parse("identity=SIM2").kind,
            FaultKind::Identity {
                serial: "SIM2".into()
            }
        );
        assert_eq!(parse("errors=3").kind, FaultKind::Errors { count: 3 });
        let f = parse("errors=1,addr=22,on=TARM SGL,1");
        assert_eq!(f.address, Some(22));
        assert_eq!(f.trigger, Trigger::OnMessage("TARM SGL,1".into()));
        let f = parse("silent,every=4");
        assert!(f.repeat);
        assert_eq!(f.trigger, Trigger::AfterReplies(4));
    }

    #[test]
    fn refuses_bad_specs_with_a_reason() {
        for (text, reason) in [
            ("", "no fault kind"),
            ("explode", "unknown fault kind `explode`"),
            ("disconnect", "`disconnect` needs a value"),
            ("disconnect=soon", "is not a duration"),
            ("silent=1", "takes no value"),
            ("flood=10PB", "unknown size unit"),
            ("flood=17GiB", "more than 16 GiB"),
            ("block=long", "not short, huge or indefinite"),
            ("identity=a b", "printable ASCII"),
            ("garbage,after=1,every=2", "only one of"),
            ("garbage,after=1,on=X", "only one of"),
            ("garbage,on=", "needs a text"),
            ("garbage,addr=31", "is not 0–30"),
            ("garbage,new-path", "unknown option `new-path`"),
            ("on=READ?", "kind comes first"),
            ("errors=1001", "at most 1000"),
        ] {
            match text.parse::<Fault>() {
                Err(SpecError::Fault { reason: r, .. }) => {
                    assert!(r.contains(reason), "{text}: {r}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    fn reply() -> Reply {
        Reply::text("+1.00000000E+01\n")
    }

    fn bytes(e: &Emission) -> Vec<u8> {
        let mut out = Vec::new();
        for c in e.chunks.clone() {
            let mut c = c;
            while let Some((p, _)) = c.take_piece() {
                out.extend(p);
            }
        }
        out
    }

    #[test]
    fn reply_faults_transform_as_documented() {
        let e = apply(reply(), &[FaultKind::Unterminated], b"\n", 0);
        assert_eq!(bytes(&e), b"+1.00000000E+01");
        assert!(matches!(e.chunks[0], Chunk::Bytes { end: false, .. }));
        let e = apply(reply(), &[FaultKind::Garbage { len: 40 }], b"\r\n", 1);
        let b = bytes(&e);
        assert_eq!(b.len(), 42);
        assert!(b.ends_with(b"\r\n") && !b[..40].contains(&b'\n') && !b[..40].contains(&b'\r'));
        assert_eq!(
            apply(reply(), &[FaultKind::Garbage { len: 40 }], b"\r\n", 1),
            e,
            "garbage is reproducible"
        );
        let e = apply(
            reply(),
            &[FaultKind::Slow {
                delay: Duration::from_secs(2),
            }],
            b"\n",
            0,
        );
        assert_eq!(e.delay, Duration::from_secs(2));
        assert_eq!(bytes(&e), reply().bytes());
        let e = apply(reply(), &[FaultKind::Flood { bytes: 100_001 }], b"\n", 0);
        let b = bytes(&e);
        assert_eq!(b.len(), 100_001);
        assert!(!b.contains(&b'\n'));
        let e = apply(reply(), &[FaultKind::Block(BadBlock::Short)], b"\n", 0);
        assert_eq!(bytes(&e).len(), 55);
        assert!(bytes(&e).starts_with(b"#3100"));
        let e = apply(reply(), &[FaultKind::Block(BadBlock::Huge)], b"\n", 0);
        assert!(bytes(&e).starts_with(b"#9999999999"));
        let e = apply(reply(), &[FaultKind::Block(BadBlock::Indefinite)], b"\n", 0);
        assert!(bytes(&e).starts_with(b"#0") && !bytes(&e).contains(&b'\n'));
        assert!(apply(reply(), &[FaultKind::Silent], b"\n", 0).is_empty());
    }

    #[test]
    fn after_k_hits_reply_k_plus_one_and_events_fire_after_reply_k() {
        let h = FaultHandle::new();
        h.arm(Fault::after(2, FaultKind::Silent));
        h.arm(Fault::after(2, FaultKind::Errors { count: 1 }));
        assert!(h.due_events().is_empty());
        assert_eq!(h.on_reply(None), (vec![], vec![]));
        let (kinds, events) = h.on_reply(None);
        assert!(kinds.is_empty());
        assert_eq!(
            events,
            [Event::Errors {
                count: 1,
                address: None
            }]
        );
        assert_eq!(h.on_reply(None).0, [FaultKind::Silent]);
        assert_eq!(h.fired(), 2);
        assert_eq!(h.armed(), 0);
    }

    #[test]
    fn immediate_events_and_message_triggers() {
        let h = FaultHandle::new();
        h.inject(FaultKind::Identity { serial: "X".into() });
        assert_eq!(h.due_events().len(), 1);
        assert!(h.due_events().is_empty());
        h.arm(Fault::on("read?", FaultKind::Garbage { len: 1 }).at(22));
        assert_eq!(h.on_message(Some(5), b"READ?").0, []);
        assert_eq!(h.on_message(Some(22), b"*IDN?").0, []);
        assert_eq!(
            h.on_message(Some(22), b":READ?").0,
            [FaultKind::Garbage { len: 1 }]
        );
        assert_eq!(h.on_message(Some(22), b":READ?").0, []);
        // Repeating: every second reply.
        h.arm(Fault::after(1, FaultKind::Unterminated).repeating());
        let hits: Vec<bool> = (0..6).map(|_| !h.on_reply(None).0.is_empty()).collect();
        assert_eq!(hits, [false, true, false, true, false, true]);
    }

    #[tokio::test]
    async fn wait_fired_resolves_once_enough_fired() {
        let h = FaultHandle::new();
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.wait_fired(1).await })
        };
        h.inject(FaultKind::Silent);
        assert_eq!(h.on_reply(None).0, [FaultKind::Silent]);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    fn any_kind() -> impl Strategy<Value = FaultKind> {
        prop_oneof![
            (
                0u64..100_000,
                any::<bool>(),
                proptest::option::of("[A-Z0-9]{1,8}")
            )
                .prop_map(|(ms, new_path, serial)| FaultKind::Disconnect {
                    down: Duration::from_millis(ms),
                    new_path,
                    serial
                }),
            (0usize..1000).prop_map(|len| FaultKind::Garbage { len }),
            Just(FaultKind::Unterminated),
            (0u64..100_000).prop_map(|ms| FaultKind::Slow {
                delay: Duration::from_millis(ms)
            }),
            (0u64..MAX_FLOOD).prop_map(|bytes| FaultKind::Flood { bytes }),
            prop_oneof![
                Just(BadBlock::Short),
                Just(BadBlock::Huge),
                Just(BadBlock::Indefinite)
            ]
            .prop_map(FaultKind::Block),
            Just(FaultKind::Silent),
            "[A-Za-z0-9._-]{1,12}".prop_map(|serial| FaultKind::Identity { serial }),
            (0u32..=1000).prop_map(|count| FaultKind::Errors { count }),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(
            kind in any_kind(),
            trigger in prop_oneof![
                (0u64..1000).prop_map(Trigger::AfterReplies),
                "[ -~]{1,20}".prop_map(Trigger::OnMessage),
            ],
            address in proptest::option::of(0u8..=30),
            repeat in any::<bool>(),
        ) {
            let repeat = repeat && matches!(trigger, Trigger::AfterReplies(_));
            let fault = Fault { kind, trigger, address, repeat };
            prop_assert_eq!(fault.to_string().parse::<Fault>().unwrap(), fault);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Fault>();
        }
    }
}
