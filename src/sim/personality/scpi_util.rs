//! Shared machinery for the personalities built on the `scpi` crate: a command made of plain
//! functions (so a tree needs no struct per command), the IEEE 488.2 status registers and error
//! queue, the common commands, and running a message to a correctly terminated reply.

use std::collections::VecDeque;

use scpi::error::{Error, ErrorCode, Result as ScpiResult};
use scpi::parser::mnemonic_compare;
use scpi::tree::prelude::*;

/// SCPI error queue length used by the simulated models.
pub(crate) const ERROR_QUEUE_CAP: usize = 20;

/// IEEE 488.2 event status register bits.
pub(crate) const ESR_OPC: u8 = 0x01;
pub(crate) const ESR_PON: u8 = 0x80;

/// Status byte bits.
const STB_EAV: u8 = 0x04;
const STB_ESB: u8 = 0x20;
const STB_MSS: u8 = 0x40;

/// The event form of a command.
pub(crate) type EventFn<D> = fn(&mut D, &mut Parameters<'_, '_>) -> ScpiResult<()>;
/// The query form of a command.
pub(crate) type QueryFn<D> =
    fn(&mut D, &mut Parameters<'_, '_>, &mut ResponseUnit<'_>) -> ScpiResult<()>;

/// A command made of an optional event function and an optional query function.
pub(crate) struct Cmd<D> {
    event: Option<EventFn<D>>,
    query: Option<QueryFn<D>>,
}

impl<D> Cmd<D> {
    /// Event form only.
    pub(crate) const fn ev(event: EventFn<D>) -> Self {
        Self {
            event: Some(event),
            query: None,
        }
    }

    /// Query form only.
    pub(crate) const fn q(query: QueryFn<D>) -> Self {
        Self {
            event: None,
            query: Some(query),
        }
    }

    /// Both forms.
    pub(crate) const fn both(event: EventFn<D>, query: QueryFn<D>) -> Self {
        Self {
            event: Some(event),
            query: Some(query),
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
        match self.event {
            Some(f) => f(device, &mut params),
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
        match self.query {
            Some(f) => f(device, &mut params, &mut response),
            None => Err(ErrorCode::UndefinedHeader.into()),
        }
    }
}

/// IEEE 488.2 status registers and the SCPI error queue.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) errors: VecDeque<Error>,
    pub(crate) esr: u8,
    pub(crate) ese: u8,
    pub(crate) sre: u8,
    /// The bytes of the last definite-length block written in the current message, so that a
    /// block ending in `;` is not mistaken for a dangling unit separator.
    pub(crate) last_block: Option<Vec<u8>>,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            errors: VecDeque::with_capacity(ERROR_QUEUE_CAP),
            esr: ESR_PON,
            ese: 0,
            sre: 0,
            last_block: None,
        }
    }
}

impl Status {
    /// Queues `err`; a full queue keeps its oldest entries and its newest becomes -350.
    pub(crate) fn push(&mut self, err: Error) {
        self.esr |= err.esr_mask();
        if self.errors.len() < ERROR_QUEUE_CAP {
            self.errors.push_back(err);
        } else if let Some(newest) = self.errors.back_mut() {
            let overflow = Error::new(ErrorCode::QueueOverflow);
            self.esr |= overflow.esr_mask();
            *newest = overflow;
        }
    }

    pub(crate) fn status_byte(&self) -> u8 {
        let mut stb = 0;
        if !self.errors.is_empty() {
            stb |= STB_EAV;
        }
        if self.esr & self.ese != 0 {
            stb |= STB_ESB;
        }
        if stb & self.sre & !STB_MSS != 0 {
            stb |= STB_MSS;
        }
        stb
    }
}

/// What the common commands need from a device.
pub(crate) trait ScpiDevice: Device + Sized {
    fn status(&mut self) -> &mut Status;
    /// The `*IDN?` reply (fields already cleaned).
    fn idn(&self) -> String;
    /// `*RST`.
    fn reset(&mut self);
}

/// Refuses parameters beyond those a command takes, before it acts.
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
            .find(|(m, _)| mnemonic_compare(m, s))
            .map(|(_, v)| *v)
            .ok_or_else(|| ErrorCode::IllegalParameterValue.into()),
        _ => Err(ErrorCode::DataTypeError.into()),
    }
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

/// Executes `message` on `dev` through `tree` and returns the complete reply: LF-terminated,
/// replies to several queries joined with `;`, nothing when there was no query. At the first
/// error the rest of the message is dropped (the error is queued through `Device::handle_error`)
/// and the replies already produced are still sent, terminated.
pub(crate) fn run<D: ScpiDevice>(tree: &Node<'_, D>, dev: &mut D, message: &[u8]) -> Vec<u8> {
    let line = message.strip_suffix(b"\n").unwrap_or(message);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let line = line.get(start..).unwrap_or_default();
    dev.status().last_block = None;
    let mut reply = Vec::new();
    let mut context = Context::new();
    let result = tree.run(line, dev, &mut context, &mut reply);
    if result.is_ok() || reply.is_empty() {
        // On success the crate terminated a non-empty reply; a message ending in `;` leaves one
        // query reply without terminator, though.
        if reply.last() == Some(&b';') && !ends_with_block(dev, &reply) {
            reply.pop();
        }
        if !reply.is_empty() && !reply.ends_with(b"\n") {
            reply.push(b'\n');
        }
        return reply;
    }
    // The crate writes the unit separator before running a query; when that query failed, the
    // separator dangles.
    if reply.last() == Some(&b';') && !ends_with_block(dev, &reply) {
        reply.pop();
    }
    if !reply.is_empty() {
        reply.push(b'\n');
    }
    reply
}

fn ends_with_block<D: ScpiDevice>(dev: &mut D, reply: &[u8]) -> bool {
    dev.status()
        .last_block
        .as_ref()
        .is_some_and(|b| reply.ends_with(b))
}

// ---------------------------------------------------------------------------------------------
// Common commands, generic over the device.

pub(crate) fn idn_q<D: ScpiDevice>(
    dev: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let idn = dev.idn();
    respond_text(r, &idn)
}

pub(crate) fn rst_ev<D: ScpiDevice>(dev: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    no_more(p)?;
    dev.reset();
    Ok(())
}

pub(crate) fn cls_ev<D: ScpiDevice>(dev: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    no_more(p)?;
    let s = dev.status();
    s.errors.clear();
    s.esr = 0;
    Ok(())
}

pub(crate) fn opc_ev<D: ScpiDevice>(dev: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    no_more(p)?;
    dev.status().esr |= ESR_OPC;
    Ok(())
}

pub(crate) fn opc_q<D: ScpiDevice>(
    _: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, "1")
}

pub(crate) fn wai_ev<D: ScpiDevice>(_: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    no_more(p)
}

pub(crate) fn esr_q<D: ScpiDevice>(
    dev: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let esr = std::mem::take(&mut dev.status().esr);
    respond_text(r, &esr.to_string())
}

pub(crate) fn ese_ev<D: ScpiDevice>(dev: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let mask: u8 = p.next_data()?;
    no_more(p)?;
    dev.status().ese = mask;
    Ok(())
}

pub(crate) fn ese_q<D: ScpiDevice>(
    dev: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let v = dev.status().ese;
    respond_text(r, &v.to_string())
}

pub(crate) fn sre_ev<D: ScpiDevice>(dev: &mut D, p: &mut Parameters<'_, '_>) -> ScpiResult<()> {
    let mask: u8 = p.next_data()?;
    no_more(p)?;
    dev.status().sre = mask & !STB_MSS;
    Ok(())
}

pub(crate) fn sre_q<D: ScpiDevice>(
    dev: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let v = dev.status().sre;
    respond_text(r, &v.to_string())
}

pub(crate) fn stb_q<D: ScpiDevice>(
    dev: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let v = dev.status().status_byte();
    respond_text(r, &v.to_string())
}

pub(crate) fn tst_q<D: ScpiDevice>(
    _: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    respond_text(r, "0")
}

pub(crate) fn syst_err_q<D: ScpiDevice>(
    dev: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let err = dev
        .status()
        .errors
        .pop_front()
        .unwrap_or_else(|| ErrorCode::NoError.into());
    r.data(err).finish()
}

pub(crate) fn syst_err_count_q<D: ScpiDevice>(
    dev: &mut D,
    p: &mut Parameters<'_, '_>,
    r: &mut ResponseUnit<'_>,
) -> ScpiResult<()> {
    no_more(p)?;
    let n = dev.status().errors.len();
    respond_text(r, &n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scpi::{Branch, Leaf, Root};

    struct Dev {
        status: Status,
        block: Vec<u8>,
    }
    impl Device for Dev {
        fn handle_error(&mut self, err: Error) {
            self.status.push(err);
        }
    }
    impl ScpiDevice for Dev {
        fn status(&mut self) -> &mut Status {
            &mut self.status
        }
        fn idn(&self) -> String {
            "A,B,C,D".to_owned()
        }
        fn reset(&mut self) {}
    }

    fn block_q(
        d: &mut Dev,
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

    const TREE: Node<'static, Dev> = Root![
        Leaf!(b"*IDN" => &Cmd::q(idn_q::<Dev>)),
        Leaf!(b"*OPC" => &Cmd::both(opc_ev::<Dev>, opc_q::<Dev>)),
        Leaf!(b"BLOCk" => &Cmd::q(block_q)),
        Branch![b"SYSTem";
            Branch![b"ERRor";
                Leaf!(default b"NEXT" => &Cmd::q(syst_err_q::<Dev>))
            ]
        ]
    ];

    fn dev(block: &[u8]) -> Dev {
        Dev {
            status: Status::default(),
            block: block.to_vec(),
        }
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
        assert_eq!(
            run(&TREE, &mut d, b"SYST:ERR?"),
            b"-113,\"Undefined header\"\n"
        );
    }
}
