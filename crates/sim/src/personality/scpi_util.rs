//! Shared machinery for the personalities built on the `scpi` crate: a command made of plain
//! functions (so a tree needs no struct per command), the SCPI error queue on top of the shared
//! IEEE 488.2 registers (`status.rs`), the common commands and a tree that has them
//! ([`scpi_tree!`]), parameter helpers, running a message to a correctly terminated reply, and the
//! [`Personality`] every such device is.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use scpi::error::{Error, ErrorCode, Result as ScpiResult};
use scpi::tree::prelude::*;

use super::model::{Standard, clean_field};
use super::status::{ESR_OPC, STB_EAV, Status};
use super::{Personality, sim_firmware};
use crate::SimIdentity;
use crate::id::PersonalityId;
use crate::reply::Reply;

/// SCPI error queue length used by the simulated models (a 34470A's).
pub(crate) const ERROR_QUEUE_CAP: usize = 20;

/// The event form of a command, reading its own parameters.
pub(crate) type EventFn<D> = fn(&mut D, &mut Parameters<'_, '_>) -> ScpiResult<()>;
/// The query form of a command, reading its own parameters.
pub(crate) type QueryFn<D> =
    fn(&mut D, &mut Parameters<'_, '_>, &mut ResponseUnit<'_>) -> ScpiResult<()>;

/// How the event form of a command runs.
enum EventForm<D> {
    Full(EventFn<D>),
    /// Takes no parameters.
    Plain(fn(&mut D)),
    /// Sets a flag from `ON|OFF|1|0` and nothing more.
    Flag(fn(&mut D, bool)),
}

/// How the query form of a command runs.
enum QueryForm<D> {
    Full(QueryFn<D>),
    /// Takes no parameters and answers text.
    Text(fn(&mut D) -> String),
    /// Takes no parameters and answers a flag, `1` or `0`.
    Flag(fn(&D) -> bool),
}

/// A command made of plain functions: an optional event form and an optional query form. Most
/// commands take no parameters or only a flag, so they need no parsing of their own.
pub(crate) struct Cmd<D> {
    event: Option<EventForm<D>>,
    query: Option<QueryForm<D>>,
}

impl<D> Cmd<D> {
    /// Event form only.
    pub(crate) const fn ev(event: EventFn<D>) -> Self {
        Self {
            event: Some(EventForm::Full(event)),
            query: None,
        }
    }

    /// Query form only.
    pub(crate) const fn q(query: QueryFn<D>) -> Self {
        Self {
            event: None,
            query: Some(QueryForm::Full(query)),
        }
    }

    /// Both forms.
    pub(crate) const fn both(event: EventFn<D>, query: QueryFn<D>) -> Self {
        Self {
            event: Some(EventForm::Full(event)),
            query: Some(QueryForm::Full(query)),
        }
    }

    /// An event without parameters.
    pub(crate) const fn plain(event: fn(&mut D)) -> Self {
        Self {
            event: Some(EventForm::Plain(event)),
            query: None,
        }
    }

    /// A query without parameters answering text.
    pub(crate) const fn text(query: fn(&mut D) -> String) -> Self {
        Self {
            event: None,
            query: Some(QueryForm::Text(query)),
        }
    }

    /// An event, and a query without parameters answering text.
    pub(crate) const fn ev_text(event: EventFn<D>, query: fn(&mut D) -> String) -> Self {
        Self {
            event: Some(EventForm::Full(event)),
            query: Some(QueryForm::Text(query)),
        }
    }

    /// The same command with a query without parameters answering text.
    pub(crate) const fn and_text(self, query: fn(&mut D) -> String) -> Self {
        Self {
            event: self.event,
            query: Some(QueryForm::Text(query)),
        }
    }

    /// The same command with a query without parameters answering a flag, `1` or `0`.
    pub(crate) const fn and_flag(self, query: fn(&D) -> bool) -> Self {
        Self {
            event: self.event,
            query: Some(QueryForm::Flag(query)),
        }
    }

    /// A flag set with `ON|OFF|1|0`, without a query.
    pub(crate) const fn set_flag(set: fn(&mut D, bool)) -> Self {
        Self {
            event: Some(EventForm::Flag(set)),
            query: None,
        }
    }

    /// A flag set with `ON|OFF|1|0` and queried as `1` or `0`.
    pub(crate) const fn flag(set: fn(&mut D, bool), get: fn(&D) -> bool) -> Self {
        Self {
            event: Some(EventForm::Flag(set)),
            query: Some(QueryForm::Flag(get)),
        }
    }
}

impl<D: Device> Command<D> for Cmd<D> {
    fn meta(&self) -> CommandTypeMeta {
        match (self.event.is_some(), self.query.is_some()) {
            (true, true) => CommandTypeMeta::Both,
            (true, false) => CommandTypeMeta::NoQuery,
            (false, true) => CommandTypeMeta::QueryOnly,
            (false, false) => CommandTypeMeta::Unknown,
        }
    }

    fn event(&self, device: &mut D, _: &mut Context, mut params: Parameters) -> ScpiResult<()> {
        match &self.event {
            Some(EventForm::Full(f)) => f(device, &mut params),
            Some(EventForm::Plain(f)) => {
                no_more(&mut params)?;
                f(device);
                Ok(())
            }
            Some(EventForm::Flag(set)) => {
                let on = on_off(&mut params)?;
                set(device, on);
                Ok(())
            }
            None => Err(ErrorCode::UndefinedHeader.into()),
        }
    }

    fn query(
        &self,
        device: &mut D,
        _: &mut Context,
        mut params: Parameters,
        mut response: ResponseUnit,
    ) -> ScpiResult<()> {
        match &self.query {
            Some(QueryForm::Full(f)) => f(device, &mut params, &mut response),
            Some(QueryForm::Text(f)) => {
                no_more(&mut params)?;
                let text = f(device);
                respond_text(&mut response, &text)
            }
            Some(QueryForm::Flag(get)) => {
                no_more(&mut params)?;
                respond_text(&mut response, if get(device) { "1" } else { "0" })
            }
            None => Err(ErrorCode::UndefinedHeader.into()),
        }
    }
}

/// The IEEE 488.2 registers and the SCPI error queue.
#[derive(Debug, Clone)]
pub(crate) struct ScpiStatus {
    pub(crate) registers: Status,
    pub(crate) errors: VecDeque<Error>,
    /// The bytes of the last definite-length block written in the current message, so that a
    /// block ending in `;` or LF is not mistaken for a dangling unit separator or a terminator.
    pub(crate) last_block: Option<Vec<u8>>,
}

impl Default for ScpiStatus {
    fn default() -> Self {
        Self {
            registers: Status::power_on(),
            errors: VecDeque::with_capacity(ERROR_QUEUE_CAP),
            last_block: None,
        }
    }
}

impl ScpiStatus {
    /// Queues `err`; a full queue keeps its oldest entries and its newest becomes -350.
    pub(crate) fn push(&mut self, err: Error) {
        self.registers.esr |= err.esr_mask();
        if self.errors.len() < ERROR_QUEUE_CAP {
            self.errors.push_back(err);
        } else if let Some(newest) = self.errors.back_mut() {
            let overflow = Error::new(ErrorCode::QueueOverflow);
            self.registers.esr |= overflow.esr_mask();
            *newest = overflow;
        }
    }

    /// The status byte: the event summary, and EAV while errors are queued.
    pub(crate) fn status_byte(&self) -> u8 {
        let eav = if self.errors.is_empty() { 0 } else { STB_EAV };
        self.registers.status_byte(eav)
    }
}

/// An instrument on the `scpi` crate: a model's own state, with what every SCPI instrument has
/// besides it: its identity, the status registers and the error queue. Command handlers take the
/// whole instrument and reach the model's fields through `Deref`.
pub(crate) struct Scpi<M> {
    id: PersonalityId,
    /// What `*IDN?` reports; a fault that swaps the unit changes the serial number.
    identity: SimIdentity,
    pub(crate) status: ScpiStatus,
    model: M,
}

/// What a model on the `scpi` crate adds to the common commands.
pub(crate) trait ScpiModel: Send + Sized + 'static {
    /// The command tree, made with [`scpi_tree!`] so that it has the common commands.
    const TREE: Node<'static, Scpi<Self>>;

    /// Bytes that end a program message on a byte stream.
    const INPUT_TERMINATORS: &'static [u8] = b"\n";

    /// The error a fault injects.
    const INJECTED_ERROR: ErrorCode = ErrorCode::DeviceSpecificError;

    /// `*RST`.
    fn reset(&mut self);

    /// What `*CLS` clears besides the error queue and the event register.
    fn cleared(&mut self) {}

    /// Wall time the last message's measurements take with realistic timing; resets it.
    fn take_busy(&mut self) -> Duration {
        Duration::ZERO
    }

    /// A register value as `*ESR?`, `*STB?` and the like send it (Keysight meters put a `+`).
    fn register(value: u8) -> String {
        value.to_string()
    }
}

impl<M: ScpiModel> Scpi<M> {
    /// `model` as the instrument `id`, answering `*IDN?` with `identity`.
    pub(crate) fn new(id: PersonalityId, identity: SimIdentity, model: M) -> Self {
        Self {
            id,
            identity,
            status: ScpiStatus::default(),
            model,
        }
    }

    /// `*IDN?`: the identity, with the bytes that would break its framing masked.
    pub(crate) fn idn(&mut self) -> String {
        let id = &self.identity;
        [&id.manufacturer, &id.model, &id.serial, &id.firmware]
            .map(|field| clean_field(field))
            .join(",")
    }

    /// `*RST`.
    pub(crate) fn rst(&mut self) {
        self.model.reset();
    }

    /// `*CLS`: the error queue and the event register, and what the model clears with them.
    pub(crate) fn cls(&mut self) {
        self.status.errors.clear();
        self.status.registers.esr = 0;
        self.model.cleared();
    }

    /// `*OPC`.
    pub(crate) fn opc(&mut self) {
        self.status.registers.esr |= ESR_OPC;
    }

    /// `*ESR?`: the event register, cleared by reading it.
    pub(crate) fn esr(&mut self) -> String {
        M::register(self.status.registers.take_esr())
    }

    /// `*ESE?`.
    pub(crate) fn ese(&mut self) -> String {
        M::register(self.status.registers.ese)
    }

    /// `*SRE?`.
    pub(crate) fn sre(&mut self) -> String {
        M::register(self.status.registers.sre)
    }

    /// `*STB?`: the status byte, not cleared by reading.
    pub(crate) fn stb(&mut self) -> String {
        M::register(self.status.status_byte())
    }

    /// `*TST?`: the self-test always passes.
    pub(crate) fn tst(&mut self) -> String {
        M::register(0)
    }

    /// `SYSTem:ERRor:COUNt?`.
    pub(crate) fn error_count(&mut self) -> String {
        self.status.errors.len().to_string()
    }
}

/// The identity of a model whose maker and model name are fixed: the serial number the
/// simulator gives it and the simulator's firmware field.
pub(crate) fn identity(manufacturer: &str, model: &str, serial: &str) -> SimIdentity {
    SimIdentity {
        manufacturer: manufacturer.to_owned(),
        model: model.to_owned(),
        serial: serial.to_owned(),
        firmware: sim_firmware(),
    }
}

impl<M> Deref for Scpi<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M> DerefMut for Scpi<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.model
    }
}

impl<M: ScpiModel> Device for Scpi<M> {
    fn handle_error(&mut self, err: Error) {
        self.status.push(err);
    }
}

impl<M: ScpiModel> Personality for Scpi<M> {
    fn id(&self) -> PersonalityId {
        self.id
    }

    fn handle(&mut self, message: &[u8]) -> Reply {
        let bytes = run(&M::TREE, self, message);
        let delay = self.model.take_busy();
        Reply::from_scpi(bytes, delay)
    }

    fn input_terminators(&self) -> &'static [u8] {
        M::INPUT_TERMINATORS
    }

    fn talk(&mut self) -> Reply {
        self.status.push(ErrorCode::QueryUnterminated.into());
        Reply::none()
    }

    fn status_byte(&mut self) -> u8 {
        self.status.status_byte()
    }

    fn input_overflow(&mut self) {
        self.status.push(ErrorCode::TooMuchData.into());
    }

    fn inject_error(&mut self) {
        self.status.push(M::INJECTED_ERROR.into());
    }

    fn set_serial(&mut self, serial: &str) {
        serial.clone_into(&mut self.identity.serial);
    }
}

/// A root node with the IEEE 488.2 common commands every SCPI personality answers (`*IDN?`,
/// `*RST`, `*CLS`, `*OPC`, `*WAI`, `*ESR?`, `*ESE`, `*SRE`, `*STB?`, `*TST?`), then `$child`ren.
macro_rules! scpi_tree {
    ($m:ty; $($child:expr),+ $(,)?) => {{
        use $crate::personality::scpi_util::{Cmd, Scpi, mask};
        type I = Scpi<$m>;
        scpi::Root![
            scpi::Leaf!(b"*IDN" => &Cmd::text(I::idn)),
            scpi::Leaf!(b"*RST" => &Cmd::plain(I::rst)),
            scpi::Leaf!(b"*CLS" => &Cmd::plain(I::cls)),
            scpi::Leaf!(b"*OPC" => &Cmd::<I>::plain(I::opc).and_text(|_| "1".to_owned())),
            scpi::Leaf!(b"*WAI" => &Cmd::<I>::plain(|_| {})),
            scpi::Leaf!(b"*ESR" => &Cmd::text(I::esr)),
            scpi::Leaf!(b"*ESE" => &Cmd::<I>::ev_text(
                |d, p| {
                    d.status.registers.ese = mask(p)?;
                    Ok(())
                },
                I::ese
            )),
            scpi::Leaf!(b"*SRE" => &Cmd::<I>::ev_text(
                |d, p| {
                    d.status.registers.set_sre(mask(p)?);
                    Ok(())
                },
                I::sre
            )),
            scpi::Leaf!(b"*STB" => &Cmd::text(I::stb)),
            scpi::Leaf!(b"*TST" => &Cmd::text(I::tst)),
            $($child),+
        ]
    }};
}
pub(crate) use scpi_tree;

/// `[:SENSe]` of the Keithley DMMs: its own `$leaf`s, then `VOLTage[:DC]`, `RESistance` and
/// `FRESistance`, with the settings of the voltage function (`$volt`) and of the resistance
/// functions (`$res`).
macro_rules! sense_branch {
    ($volt:expr, $res:expr; $($leaf:expr),+ $(,)?) => {
        scpi::tree::Node::Branch {
            name: b"SENSe",
            default: true,
            sub: &[
                $($leaf,)+
                scpi::tree::Node::Branch {
                    name: b"VOLTage",
                    default: false,
                    sub: &[scpi::tree::Node::Branch {
                        name: b"DC",
                        default: true,
                        sub: &$volt,
                    }],
                },
                scpi::tree::Node::Branch {
                    name: b"RESistance",
                    default: false,
                    sub: &$res,
                },
                scpi::tree::Node::Branch {
                    name: b"FRESistance",
                    default: false,
                    sub: &$res,
                },
            ],
        }
    };
}
pub(crate) use sense_branch;

/// Refuses parameters beyond those a command takes, before it acts (the crate would only notice
/// after the handler had run).
pub(crate) fn no_more(params: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    match params.next_optional_token()? {
        Some(_) => Err(ErrorCode::ParameterNotAllowed.into()),
        None => Ok(()),
    }
}

pub(crate) fn respond_text(resp: &mut ResponseUnit<'_>, text: &str) -> ScpiResult<()> {
    if !text.is_ascii() {
        return Err(ErrorCode::ExecutionError.into());
    }
    resp.data(Character(text.as_bytes())).finish()
}

/// Character data matching one of `choices` (`(mnemonic, value)`, long form with the short form
/// in capitals, as `mnemonic_compare` expects).
pub(crate) fn choice<T: Copy>(token: Token<'_>, choices: &[(&[u8], T)]) -> ScpiResult<T> {
    match token {
        Token::CharacterProgramData(s) => choices
            .iter()
            .find(|(m, _)| scpi::parser::mnemonic_compare(m, s))
            .map(|(_, v)| *v)
            .ok_or_else(|| ErrorCode::IllegalParameterValue.into()),
        _ => Err(ErrorCode::DataTypeError.into()),
    }
}

/// One of `choices` (see [`choice`]) and nothing more.
pub(crate) fn one_of<T: Copy>(
    params: &mut Parameters<'_, '_>,
    choices: &[(&[u8], T)],
) -> ScpiResult<T> {
    let v = choice(params.next_token()?, choices)?;
    no_more(params)?;
    Ok(v)
}

/// A number parameter within `min..=max`.
pub(crate) fn number_in(token: Token<'_>, min: f64, max: f64) -> ScpiResult<f64> {
    let v = f64::try_from(token)?;
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ErrorCode::DataOutOfRange.into())
    }
}

/// What `MINimum`, `MAXimum` and `DEFault` stand for in one numeric setting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) def: f64,
}

impl Limits {
    fn keywords(self) -> [(&'static [u8], f64); 3] {
        [
            (b"MINimum", self.min),
            (b"MAXimum", self.max),
            (b"DEFault", self.def),
        ]
    }

    /// A setting's value: `MIN|MAX|DEF`, or a number that `parse` checks (and rounds).
    pub(crate) fn parse(
        self,
        token: Token<'_>,
        parse: impl FnOnce(Token<'_>) -> ScpiResult<f64>,
    ) -> ScpiResult<f64> {
        match token {
            t @ Token::CharacterProgramData(_) => choice(t, &self.keywords()),
            t => parse(t),
        }
    }

    /// A setting's value: `MIN|MAX|DEF`, or a number within the limits.
    pub(crate) fn number(self, token: Token<'_>) -> ScpiResult<f64> {
        self.parse(token, |t| number_in(t, self.min, self.max))
    }

    /// A setting's only parameter: `MIN|MAX|DEF`, or a number within the limits.
    pub(crate) fn setting(self, params: &mut Parameters<'_, '_>) -> ScpiResult<f64> {
        let v = self.number(params.next_token()?)?;
        no_more(params)?;
        Ok(v)
    }

    /// A setting's query: `current`, or what an optional `MIN|MAX|DEF` stands for.
    pub(crate) fn query(self, params: &mut Parameters<'_, '_>, current: f64) -> ScpiResult<f64> {
        match params.next_optional_token()? {
            None => Ok(current),
            Some(t) => choice(t, &self.keywords()),
        }
    }
}

/// `FORMat:BORDer`: whether binary readings are swapped, little-endian.
pub(crate) const BYTE_ORDERS: [(&[u8], bool); 2] = [(b"NORMal", false), (b"SWAPped", true)];

/// How a query answers an enumerated setting: the short form of its keyword (the mnemonic's
/// capitals), as SCPI prescribes.
pub(crate) fn short_form<T: PartialEq>(keywords: &[(&[u8], T)], value: &T) -> String {
    keywords
        .iter()
        .find(|(_, v)| v == value)
        .map(|(mnemonic, _)| {
            mnemonic
                .iter()
                .take_while(|b| !b.is_ascii_lowercase())
                .map(|b| char::from(*b))
                .collect()
        })
        .unwrap_or_default()
}

/// The command of an enumerated setting in field `$field` of a `$d`: set to one of `$keywords`
/// (see [`choice`]), answered with the keyword's [`short_form`].
macro_rules! keyword_setting {
    ($d:ty, $keywords:expr, $field:ident) => {
        &$crate::personality::scpi_util::Cmd::<$d>::ev_text(
            |d, p| {
                d.$field = $crate::personality::scpi_util::one_of(p, &$keywords)?;
                Ok(())
            },
            |d| $crate::personality::scpi_util::short_form(&$keywords, &d.$field),
        )
    };
}
pub(crate) use keyword_setting;

/// Readings as IEEE-754 binary: single or double precision, big-endian unless `swapped`.
pub(crate) fn ieee754(
    readings: impl IntoIterator<Item = f64>,
    single: bool,
    swapped: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for r in readings {
        match (single, swapped) {
            (true, false) => out.extend((r as f32).to_be_bytes()),
            (true, true) => out.extend((r as f32).to_le_bytes()),
            (false, false) => out.extend(r.to_be_bytes()),
            (false, true) => out.extend(r.to_le_bytes()),
        }
    }
    out
}

/// `ON|OFF|1|0` and nothing more.
pub(crate) fn on_off(params: &mut Parameters<'_, '_>) -> ScpiResult<bool> {
    let on: bool = params.next_data()?;
    no_more(params)?;
    Ok(on)
}

/// What `[:SENSe]:FUNCtion` selects on the Keithley DMMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    /// DC volts: the standard itself.
    Dcv,
    /// 2-wire ohms.
    Res,
    /// 4-wire ohms.
    Fres,
}

impl Function {
    /// The function named by a string parameter (`"VOLT:DC"`, `'RES'`), and nothing more.
    pub(crate) fn parse(params: &mut Parameters<'_, '_>) -> ScpiResult<Self> {
        let name: &[u8] = params.next_data()?;
        no_more(params)?;
        match name.to_ascii_uppercase().as_slice() {
            b"VOLT:DC" | b"VOLTAGE:DC" | b"VOLT" | b"VOLTAGE" => Ok(Function::Dcv),
            b"RES" | b"RESISTANCE" => Ok(Function::Res),
            b"FRES" | b"FRESISTANCE" => Ok(Function::Fres),
            _ => Err(ErrorCode::IllegalParameterValue.into()),
        }
    }

    /// The short name the function queries answer.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Dcv => "VOLT:DC",
            Function::Res => "RES",
            Function::Fres => "FRES",
        }
    }

    /// One reading: the standard's voltage, or a 10 kΩ resistor that follows it ppm for ppm.
    pub(crate) fn read(self, standard: &mut Standard) -> f64 {
        match self {
            Function::Dcv => standard.volts(),
            Function::Res | Function::Fres => standard.scaled(10_000.0),
        }
    }
}

/// Executes `message` on `dev` through `tree` and returns the complete reply: LF-terminated,
/// replies to several queries joined with `;`, nothing when there was no query. At the first
/// error the rest of the message is dropped (the error is queued through `Device::handle_error`)
/// and the replies already produced are still sent, terminated. A message may end in LF or CR LF
/// and start with white space, which IEEE 488.2 allows and the tokenizer does not.
pub(crate) fn run<M: ScpiModel>(
    tree: &Node<'_, Scpi<M>>,
    dev: &mut Scpi<M>,
    message: &[u8],
) -> Vec<u8> {
    let line = message.strip_suffix(b"\n").unwrap_or(message);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let line = line.get(start..).unwrap_or_default();
    dev.status.last_block = None;
    let mut reply = Vec::new();
    let mut context = Context::new();
    let result = tree.run(line, dev, &mut context, &mut reply);
    // Replies to the queries before an error stand, but the crate leaves them unterminated,
    // possibly with the separator it wrote before the failing query. It also skips the
    // terminator when a message ends in `;` (`*ESR?;`). A binary block may itself end in `;` or
    // LF, so those bytes only count as separator or terminator after something else.
    let ends_with_block = dev
        .status
        .last_block
        .as_ref()
        .is_some_and(|b| reply.ends_with(b));
    if reply.last() == Some(&b';') && !ends_with_block {
        reply.pop();
    }
    let terminated = result.is_ok() && reply.last() == Some(&b'\n') && !ends_with_block;
    if !reply.is_empty() && !terminated {
        reply.push(b'\n');
    }
    reply
}

// ---------------------------------------------------------------------------------------------
// Common commands with parameters, generic over the model.

/// The mask of `*ESE` or `*SRE`, and nothing more.
pub(crate) fn mask(params: &mut Parameters<'_, '_>) -> ScpiResult<u8> {
    let mask: u8 = params.next_data()?;
    no_more(params)?;
    Ok(mask)
}

/// `SYSTem:ERRor[:NEXT]?`: the oldest queued error, or `0,"No error"`.
pub(crate) fn syst_err_q<M: ScpiModel>(
    dev: &mut Scpi<M>,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let err = dev
        .status
        .errors
        .pop_front()
        .unwrap_or_else(|| ErrorCode::NoError.into());
    r.data(err).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scpi::{Branch, Leaf};

    /// A model that sends a fixed block.
    struct Dev {
        block: Vec<u8>,
    }

    impl ScpiModel for Dev {
        const TREE: Node<'static, Scpi<Dev>> = TREE;
        fn reset(&mut self) {}
    }

    fn block_q(
        d: &mut Scpi<Dev>,
        p: &mut Parameters<'_, '_>,
        r: &mut ResponseUnit<'_>,
    ) -> ScpiResult<()> {
        no_more(p)?;
        let b = d.block.clone();
        r.data(Arbitrary(&b)).finish()?;
        let mut block = format!("#1{}", b.len()).into_bytes();
        block.extend_from_slice(&b);
        d.status.last_block = Some(block);
        Ok(())
    }

    const TREE: Node<'static, Scpi<Dev>> = scpi_tree![Dev;
        Leaf!(b"BLOCk" => &Cmd::q(block_q)),
        Branch![b"SYSTem";
            Branch![b"ERRor";
                Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<Dev>))
            ]
        ]
    ];

    fn dev(block: &[u8]) -> Scpi<Dev> {
        let identity = SimIdentity {
            manufacturer: "A".into(),
            model: "B".into(),
            serial: "C".into(),
            firmware: "D".into(),
        };
        let model = Dev {
            block: block.to_vec(),
        };
        Scpi::new(PersonalityId::GenericScpiDmm, identity, model)
    }

    #[test]
    fn replies_are_terminated_and_separators_do_not_dangle() {
        let mut d = dev(b"ab;");
        assert_eq!(run(&TREE, &mut d, b"*IDN?"), b"A,B,C,D\n");
        assert_eq!(run(&TREE, &mut d, b"*OPC?;*IDN? 1"), b"1\n");
        assert_eq!(run(&TREE, &mut d, b"*OPC?;"), b"1\n");
        // A block ending in `;` keeps it, with or without a later error.
        assert_eq!(run(&TREE, &mut d, b"BLOC?"), b"#13ab;\n");
        assert_eq!(run(&TREE, &mut d, b"BLOC?;BOGUS"), b"#13ab;\n");
        assert_eq!(run(&TREE, &mut d, b"BLOC?;*IDN? 2"), b"#13ab;\n");
        let mut d = dev(b"a\n");
        assert_eq!(run(&TREE, &mut d, b"BLOC?;FOO"), b"#12a\n\n");
        assert_eq!(run(&TREE, &mut d, b"BLOC?"), b"#12a\n\n");
        assert_eq!(run(&TREE, &mut d, b"BLOC?;"), b"#12a\n\n");
        assert_eq!(
            run(&TREE, &mut d, b"SYST:ERR?"),
            b"-113,\"Undefined header\"\n"
        );
    }
}
