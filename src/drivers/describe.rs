//! A profile in words, for `tsagent drivers show ID`.

use std::fmt::Write;
use std::time::Duration;

use super::{ByteOrder, IdentityFormat, IoSpec, Operation, Profile, ReplySpec};
use crate::transport::{DataBits, Parity, StopBits};

/// Marks what the reference could not confirm, so a technician checks it on the unit.
const UNCONFIRMED: &str = "[UNCONFIRMED]";

/// Describes a profile for people: identity, io, init, errors, then each operation with its
/// parameters, commands and reply, flagging everything marked unconfirmed.
pub fn describe(profile: &Profile) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_profile(&mut out, profile);
    out
}

fn write_profile(out: &mut String, p: &Profile) -> std::fmt::Result {
    writeln!(out, "{}: {} ({})", p.id, p.name, p.kind)?;
    writeln!(out, "source: {}", p.source)?;
    if let Some(by) = &p.overridden_by {
        writeln!(out, "overridden by: {by}")?;
    }
    let unconfirmed = unconfirmed_items(p);
    if !unconfirmed.is_empty() {
        writeln!(
            out,
            "{UNCONFIRMED} not confirmed by the reference, check on the unit: {}",
            unconfirmed.join(", ")
        )?;
    }
    if let Some(notes) = &p.notes {
        writeln!(out, "notes:")?;
        for line in notes.trim().lines() {
            writeln!(out, "  {line}")?;
        }
    }
    let id = &p.identity;
    writeln!(
        out,
        "identity: {} → must match {}{}",
        id.query,
        id.pattern.as_str(),
        match id.format {
            IdentityFormat::Idn => " (IEEE 488.2 *IDN? fields)",
            IdentityFormat::Pattern => " (fields from the pattern's named captures)",
        }
    )?;
    if let Some(quiet) = id.continues {
        writeln!(
            out,
            "  the reply goes on over several lines, read until {} of quiet",
            duration(quiet)
        )?;
    }
    writeln!(out, "io: {}", io_line(&p.io))?;
    if p.init.is_empty() {
        writeln!(out, "init: none")?;
    } else {
        writeln!(out, "init:")?;
        for cmd in &p.init {
            writeln!(out, "  {cmd}")?;
        }
    }
    match &p.errors {
        None => writeln!(
            out,
            "errors: none (the agent cannot read this instrument's errors)"
        )?,
        Some(e) => {
            writeln!(
                out,
                "errors: {} until the reply matches {} ({}, at most {} queries){}",
                e.query,
                e.no_error.as_str(),
                e.format.as_str(),
                e.limit,
                flag(e.unconfirmed)
            )?;
            if let Some(explain) = &e.explain {
                writeln!(out, "  explain: {explain}")?;
            }
        }
    }
    if p.operations.is_empty() {
        writeln!(out, "operations: none")?;
    } else {
        writeln!(out, "operations:")?;
        for (name, op) in &p.operations {
            write_operation(out, name, op, &p.io)?;
        }
    }
    Ok(())
}

fn unconfirmed_items(p: &Profile) -> Vec<String> {
    let mut items = Vec::new();
    if p.errors.as_ref().is_some_and(|e| e.unconfirmed) {
        items.push("errors".to_owned());
    }
    items.extend(
        p.operations
            .iter()
            .filter(|(_, op)| op.unconfirmed)
            .map(|(name, _)| format!("operation {name}")),
    );
    items
}

fn flag(unconfirmed: bool) -> String {
    if unconfirmed {
        format!(" {UNCONFIRMED}")
    } else {
        String::new()
    }
}

fn io_line(io: &IoSpec) -> String {
    let mut line = format!(
        "write \"{}\", read \"{}\", timeout {}",
        io.write_termination.escape_ascii(),
        io.read_termination.escape_ascii(),
        duration(io.timeout)
    );
    let mut serial = Vec::new();
    if let Some(baud) = io.baud {
        serial.push(format!("{baud} baud"));
    }
    if let Some(bits) = io.data_bits {
        serial.push(
            match bits {
                DataBits::Seven => "7 data bits",
                DataBits::Eight => "8 data bits",
            }
            .to_owned(),
        );
    }
    if let Some(parity) = io.parity {
        serial.push(
            match parity {
                Parity::None => "no parity",
                Parity::Even => "even parity",
                Parity::Odd => "odd parity",
            }
            .to_owned(),
        );
    }
    if let Some(stop) = io.stop_bits {
        serial.push(
            match stop {
                StopBits::One => "1 stop bit",
                StopBits::Two => "2 stop bits",
            }
            .to_owned(),
        );
    }
    if !serial.is_empty() {
        line.push_str("; serial ");
        line.push_str(&serial.join(", "));
    }
    line
}

fn write_operation(out: &mut String, name: &str, op: &Operation, io: &IoSpec) -> std::fmt::Result {
    writeln!(out, "  {name}{}", flag(op.unconfirmed))?;
    if !op.params.is_empty() {
        let params: Vec<String> = op
            .params
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\""))
            .collect();
        writeln!(out, "    params: {}", params.join(", "))?;
    }
    for (i, cmd) in op.setup.iter().enumerate() {
        writeln!(
            out,
            "    {}{cmd}",
            if i == 0 {
                "setup (once a series): "
            } else {
                "                       "
            }
        )?;
    }
    for (i, cmd) in op.send.iter().enumerate() {
        writeln!(out, "    {}{cmd}", if i == 0 { "send: " } else { "      " })?;
    }
    if op.opc {
        writeln!(out, "    then *OPC? until 1")?;
    }
    if let Some(wait) = &op.wait {
        writeln!(
            out,
            "    wait: {} until reply & {:#x} (bit{} {}) is set, every {}, at most {}",
            wait.query,
            wait.mask,
            if wait.mask.count_ones() == 1 { "" } else { "s" },
            bits(wait.mask),
            duration(wait.interval),
            duration(wait.timeout)
        )?;
    }
    if let (Some(query), Some(reply)) = (&op.query, &op.reply) {
        writeln!(out, "    query: {query}")?;
        writeln!(out, "    reply: {}", reply_line(reply))?;
    }
    writeln!(
        out,
        "    check errors: {}; timeout {}{}",
        if op.check_errors { "yes" } else { "no" },
        duration(op.timeout_or(io)),
        if op.timeout.is_some() {
            ""
        } else {
            " (profile default)"
        }
    )?;
    Ok(())
}

fn bits(mask: u64) -> String {
    (0..64)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b: u32| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn reply_line(reply: &ReplySpec) -> String {
    match reply {
        ReplySpec::Number => "one number".to_owned(),
        ReplySpec::Csv { field: Some(f) } => format!("comma-separated, field {f} (0-based)"),
        ReplySpec::Csv { field: None } => "comma-separated, every field a number".to_owned(),
        ReplySpec::Regex { pattern, units } => {
            let mut line = format!("regex {}", pattern.as_str());
            if !units.is_empty() {
                let units: Vec<String> = units.iter().map(|(k, v)| format!("{k} in {v}")).collect();
                line.push_str(&format!(" ({})", units.join(", ")));
            }
            line
        }
        ReplySpec::Block { format, order } => format!(
            "IEEE 488.2 block of {} ({}-endian)",
            format.as_str(),
            match order {
                ByteOrder::Big => "big",
                ByteOrder::Little => "little",
            }
        ),
        ReplySpec::Raw {
            format,
            count,
            terminated,
        } => format!(
            "{} big-endian {} values ({} bytes each, no header, {})",
            count.as_str(),
            format.as_str(),
            format.size(),
            if *terminated {
                "then the read termination"
            } else {
                "no termination"
            }
        ),
        ReplySpec::Text => "text".to_owned(),
    }
}

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
