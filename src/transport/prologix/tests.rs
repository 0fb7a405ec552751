//! The adapter against a fake Prologix on real ptys and loopback TCP, and its pure parts.

use std::time::Duration;

use proptest::prelude::*;

use super::fake::{Addr, FakeAdapter, Heard, Instrument, adapter_pair};
use super::*;
use crate::transport::block::encode_definite;
use crate::transport::testdev::{KINDS, Kind, settings};
use crate::transport::{Link, LinkSettings};

const DMM: Addr = (22, None);
const CAL: Addr = (5, Some(96));

/// An instrument that answers each query `Q…?` with `<name>:Q…` and ignores other commands.
fn echo(name: &'static str) -> Instrument {
    Box::new(move |data: &[u8]| {
        let text = std::str::from_utf8(data).ok()?.strip_suffix('\n')?;
        let query = text.strip_suffix('?')?;
        Some(format!("{name}:{query}\n").into_bytes())
    })
}

/// Two instruments (`dmm` at 22, `cal` at 5/96) on a fake adapter, with a link to each.
async fn bus(kind: Kind, timeout_ms: u64) -> (FakeAdapter, PrologixAdapter, Link, Link) {
    let (device, adapter) = adapter_pair(kind, DEFAULT_READ_TMO_MS).await;
    let fake = FakeAdapter::serve(device, vec![(DMM, echo("dmm")), (CAL, echo("cal"))]);
    let dmm = adapter.link(22, None, settings(timeout_ms)).unwrap();
    let cal = adapter.link(5, Some(96), settings(timeout_ms)).unwrap();
    (fake, adapter, dmm, cal)
}

async fn query(link: &mut Link, command: &str) -> Result<String, TransportError> {
    link.write(command.as_bytes()).await?;
    link.read_reply().await
}

#[tokio::test]
async fn initialises_then_addresses_and_reads() {
    for kind in KINDS {
        let (fake, adapter, mut dmm, _cal) = bus(kind, 5000).await;
        assert_eq!(
            query(&mut dmm, "READ?").await.unwrap(),
            "dmm:READ",
            "{kind:?}"
        );
        let log = fake.log.lock().unwrap();
        assert_eq!(
            log.commands(),
            [
                "++savecfg 0",
                "++mode 1",
                "++auto 0",
                "++read_tmo_ms 50",
                "++eos 3",
                "++eoi 1",
                "++eot_enable 0",
                "++addr 22",
                "++read eoi",
            ],
            "{kind:?}"
        );
        assert_eq!(log.data(), [(Some(DMM), b"READ?\n".to_vec())], "{kind:?}");
        assert!(log.violations.is_empty(), "{kind:?}: {:?}", log.violations);
        assert_eq!(dmm.resource().to_string(), "GPIB0::22::INSTR");
        assert_eq!(adapter.board(), 0);
        assert!(format!("{dmm:?}").contains("via: Some(Prologix"), "{dmm:?}");
    }
}

#[tokio::test]
async fn addresses_only_when_switching() {
    let (fake, _adapter, mut dmm, mut cal) = bus(Kind::Tcp, 5000).await;
    assert_eq!(query(&mut dmm, "A?").await.unwrap(), "dmm:A");
    assert_eq!(query(&mut dmm, "B?").await.unwrap(), "dmm:B");
    assert_eq!(query(&mut cal, "C?").await.unwrap(), "cal:C");
    cal.write(b"OPER").await.unwrap();
    assert_eq!(query(&mut dmm, "D?").await.unwrap(), "dmm:D");
    let log = fake.log.lock().unwrap();
    let addressing: Vec<String> = log
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("++addr"))
        .collect();
    assert_eq!(addressing, ["++addr 22", "++addr 5 96", "++addr 22"]);
    assert_eq!(
        log.data(),
        [
            (Some(DMM), b"A?\n".to_vec()),
            (Some(DMM), b"B?\n".to_vec()),
            (Some(CAL), b"C?\n".to_vec()),
            (Some(CAL), b"OPER\n".to_vec()),
            (Some(DMM), b"D?\n".to_vec()),
        ]
    );
}

#[tokio::test]
async fn two_instruments_from_two_tasks() {
    for kind in KINDS {
        let (fake, _adapter, mut dmm, mut cal) = bus(kind, 5000).await;
        const ROUNDS: usize = 40;
        let run = |mut link: Link, name: &'static str| {
            tokio::spawn(async move {
                for n in 0..ROUNDS {
                    let reply = query(&mut link, &format!("Q{n}?")).await.unwrap();
                    assert_eq!(reply, format!("{name}:Q{n}"));
                    // Give the other task a turn at the adapter between a write and its read.
                    link.write(format!("W{n}").as_bytes()).await.unwrap();
                    tokio::task::yield_now().await;
                }
                link
            })
        };
        let dmm_task = run(dmm, "dmm");
        let cal_task = run(cal, "cal");
        dmm = dmm_task.await.unwrap();
        cal = cal_task.await.unwrap();
        // Both links still work after the interleaving.
        assert_eq!(query(&mut cal, "END?").await.unwrap(), "cal:END");
        assert_eq!(query(&mut dmm, "END?").await.unwrap(), "dmm:END");

        let log = fake.log.lock().unwrap();
        assert!(log.violations.is_empty(), "{kind:?}: {:?}", log.violations);
        let mut current = None;
        let mut switches = 0;
        for heard in &log.heard {
            if let Heard::Command(command) = heard
                && let Some(args) = command.strip_prefix("++addr ")
            {
                assert_ne!(current.as_deref(), Some(args), "{kind:?}: redundant ++addr");
                current = Some(args.to_owned());
                switches += 1;
            }
        }
        let reads = log.commands().iter().filter(|c| *c == "++read eoi").count();
        assert_eq!(reads, 2 * ROUNDS + 2, "{kind:?}");
        assert_eq!(log.data().len(), 4 * ROUNDS + 2, "{kind:?}");
        assert!(switches >= 2, "{kind:?}: {switches}");
        assert!(switches <= log.heard.len(), "{kind:?}");
    }
}

#[tokio::test]
async fn a_reply_waits_for_its_talker() {
    let (_fake, _adapter, mut dmm, mut cal) = bus(Kind::Pty, 5000).await;
    dmm.write(b"FIRST?").await.unwrap();
    cal.write(b"SECOND?").await.unwrap();
    assert_eq!(cal.read_reply().await.unwrap(), "cal:SECOND");
    assert_eq!(dmm.read_reply().await.unwrap(), "dmm:FIRST");
}

#[tokio::test]
async fn special_bytes_are_escaped() {
    for kind in KINDS {
        let (fake, adapter, mut dmm, _cal) = bus(kind, 5000).await;
        let crlf = LinkSettings {
            write_termination: b"\r\n".to_vec(),
            ..settings(5000)
        };
        let mut raw_dmm = adapter.link(22, None, crlf).unwrap();
        let message = b"SOUR:VOLT +1.5\r\n\x1b;DISP:TEXT \"a+b\"";
        raw_dmm.write(message).await.unwrap();
        // A query afterwards shows the adapter has processed the write.
        assert_eq!(query(&mut dmm, "Q?").await.unwrap(), "dmm:Q");
        let log = fake.log.lock().unwrap();
        assert!(log.violations.is_empty(), "{kind:?}: {:?}", log.violations);
        let Heard::Data { to, raw, data } = log
            .heard
            .iter()
            .find(|h| matches!(h, Heard::Data { .. }))
            .unwrap()
        else {
            unreachable!()
        };
        assert_eq!(*to, Some(DMM));
        let mut expected = message.to_vec();
        expected.extend_from_slice(b"\r\n");
        assert_eq!(data, &expected, "{kind:?}");
        assert_eq!(raw, &escape(&expected));
        assert!(raw.starts_with(b"SOUR:VOLT \x1b+1.5\x1b\r\x1b\n\x1b\x1b;"));
    }
}

/// An instrument with binary replies.
fn binary() -> Instrument {
    Box::new(|data: &[u8]| match data {
        b"BLOCK?\n" => {
            let payload: Vec<u8> = (0u8..16)
                .map(|i| [b'\n', b'\r', b'+', 0x1b][usize::from(i % 4)])
                .collect();
            let mut reply = encode_definite(&payload).unwrap();
            reply.push(b'\n');
            Some(reply)
        }
        b"DREAL?\n" => Some([1.5f64.to_be_bytes(), (-2.0f64).to_be_bytes()].concat()),
        _ => None,
    })
}

#[tokio::test]
async fn blocks_and_raw_binary_through_the_adapter() {
    for kind in KINDS {
        let (device, adapter) = adapter_pair(kind, DEFAULT_READ_TMO_MS).await;
        let fake = FakeAdapter::serve(device, vec![(DMM, binary())]);
        let mut dmm = adapter.link(22, None, settings(5000)).unwrap();
        dmm.write(b"BLOCK?").await.unwrap();
        let payload = dmm.read_block(1000).await.unwrap();
        assert_eq!(payload.len(), 16, "{kind:?}");
        assert_eq!(&payload[..4], b"\n\r+\x1b", "{kind:?}");
        dmm.write(b"DREAL?").await.unwrap();
        let raw = dmm.read_exact(16, false).await.unwrap();
        assert_eq!(f64::from_be_bytes(raw[..8].try_into().unwrap()), 1.5);
        assert_eq!(f64::from_be_bytes(raw[8..].try_into().unwrap()), -2.0);
        dmm.write(b"BLOCK?").await.unwrap();
        let error = dmm.read_block(15).await.unwrap_err();
        assert!(
            matches!(
                error,
                TransportError::BlockTooLong {
                    claimed: 16,
                    cap: 15
                }
            ),
            "{kind:?}: {error:?}"
        );
        assert!(fake.log.lock().unwrap().violations.is_empty());
    }
}

#[tokio::test]
async fn several_replies_in_one_message_need_one_read() {
    let (device, adapter) = adapter_pair(Kind::Tcp, DEFAULT_READ_TMO_MS).await;
    let two: Instrument = Box::new(|_: &[u8]| Some(b"1\n2\n".to_vec()));
    let fake = FakeAdapter::serve(device, vec![(DMM, two), (CAL, echo("cal"))]);
    let mut dmm = adapter.link(22, None, settings(300)).unwrap();
    let mut cal = adapter.link(5, Some(96), settings(300)).unwrap();
    assert_eq!(query(&mut dmm, "TWO?").await.unwrap(), "1");
    assert_eq!(dmm.read_reply().await.unwrap(), "2");
    assert_eq!(query(&mut dmm, "TWO?").await.unwrap(), "1");
    assert_eq!(dmm.buffered(), 2);
    // Once another instrument has used the adapter, the leftover `2` belongs to a finished
    // exchange: the next read asks the adapter afresh (and the instrument has nothing).
    assert_eq!(query(&mut cal, "C?").await.unwrap(), "cal:C");
    let error = dmm.read_reply().await.unwrap_err();
    assert!(
        matches!(error, TransportError::Timeout { received: 0, .. }),
        "{error:?}"
    );
    let reads = fake
        .log
        .lock()
        .unwrap()
        .commands()
        .iter()
        .filter(|c| *c == "++read eoi")
        .count();
    assert_eq!(reads, 4);
}

#[tokio::test]
async fn another_links_exchange_ends_a_pending_resync() {
    let (device, adapter) = adapter_pair(Kind::Pty, DEFAULT_READ_TMO_MS).await;
    let mut echo_dmm = echo("dmm");
    // A reply that ends with EOI alone, so no terminator ever ends its overlong tail.
    let dmm: Instrument = Box::new(move |data: &[u8]| match data {
        b"LONG?\n" => Some(vec![b'x'; 50]),
        other => echo_dmm(other),
    });
    let _fake = FakeAdapter::serve(device, vec![(DMM, dmm), (CAL, echo("cal"))]);
    let capped = LinkSettings {
        max_reply: 10,
        ..settings(2000)
    };
    let mut dmm = adapter.link(22, None, capped).unwrap();
    let mut cal = adapter.link(5, Some(96), settings(2000)).unwrap();
    let error = query(&mut dmm, "LONG?").await.unwrap_err();
    assert!(
        matches!(error, TransportError::ReplyTooLong { cap: 10 }),
        "{error:?}"
    );
    assert_eq!(query(&mut cal, "C?").await.unwrap(), "cal:C");
    // The adapter's read for `dmm` is over, so its next reply is not mistaken for the tail.
    assert_eq!(query(&mut dmm, "Q?").await.unwrap(), "dmm:Q");
}

#[tokio::test]
async fn reading_again_after_a_timeout_asks_again() {
    let (fake, _adapter, mut dmm, _cal) = bus(Kind::Pty, 150).await;
    dmm.write(b"SLOW").await.unwrap();
    let error = dmm.read_reply().await.unwrap_err();
    assert!(
        matches!(error, TransportError::Timeout { received: 0, .. }),
        "{error:?}"
    );
    fake.inject(DMM, b"+1.23E+00\n");
    assert_eq!(dmm.read_reply().await.unwrap(), "+1.23E+00");
    let commands = fake.log.lock().unwrap().commands();
    let reads = commands.iter().filter(|c| *c == "++read eoi").count();
    assert_eq!(reads, 2, "{commands:?}");
}

#[tokio::test]
async fn clear_sends_selected_device_clear() {
    for kind in KINDS {
        let (fake, _adapter, mut dmm, mut cal) = bus(kind, 150).await;
        dmm.write(b"PENDING?").await.unwrap();
        cal.clear().await.unwrap();
        dmm.clear().await.unwrap();
        // The clear emptied the instrument's output queue.
        let error = dmm.read_reply().await.unwrap_err();
        assert!(
            matches!(error, TransportError::Timeout { .. }),
            "{kind:?}: {error:?}"
        );
        assert_eq!(query(&mut dmm, "AFTER?").await.unwrap(), "dmm:AFTER");
        let commands = fake.log.lock().unwrap().commands();
        let tail: Vec<&str> = commands[7..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "++addr 22",
                "++addr 5 96",
                "++clr",
                "++addr 22",
                "++clr",
                "++read eoi",
                "++read eoi",
            ],
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn adapter_loss_disconnects_every_link() {
    for kind in KINDS {
        let (fake, _adapter, mut dmm, mut cal) = bus(kind, 10_000).await;
        assert_eq!(query(&mut dmm, "Q?").await.unwrap(), "dmm:Q");
        dmm.write(b"NEVER").await.unwrap();
        let started = std::time::Instant::now();
        let reader = tokio::spawn(async move {
            let error = dmm.read_reply().await.unwrap_err();
            (dmm, error)
        });
        // The read holds the adapter while it waits; unplugging ends it.
        fake.close().await;
        let (mut dmm, error) = reader.await.unwrap();
        assert!(error.is_connection_lost(), "{kind:?}: {error:?}");
        for error in [
            cal.write(b"Q?").await.unwrap_err(),
            cal.read_reply().await.unwrap_err(),
            cal.clear().await.unwrap_err(),
            dmm.read_block(10).await.unwrap_err(),
            dmm.write(b"Q?").await.unwrap_err(),
        ] {
            assert!(error.is_connection_lost(), "{kind:?}: {error:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{kind:?}: {:?}",
            started.elapsed()
        );
    }
}

/// An idle adapter that vanished is found without bus traffic, by the adapter and through any
/// of its links, and stays lost: nothing is written to find out.
#[tokio::test]
async fn probe_finds_a_vanished_adapter_without_traffic() {
    for kind in KINDS {
        let (fake, adapter, mut dmm, mut cal) = bus(kind, 10_000).await;
        assert_eq!(query(&mut dmm, "Q?").await.unwrap(), "dmm:Q");
        adapter.probe().await.unwrap();
        cal.probe().await.unwrap();
        assert!(!adapter.is_lost(), "{kind:?}");
        let sent = fake.log.lock().unwrap().commands().len();
        assert_eq!(sent, 9, "{kind:?}: the probes sent nothing");
        fake.close().await;
        let error = cal.probe().await.unwrap_err();
        assert!(
            matches!(error, TransportError::Disconnected),
            "{kind:?}: {error:?}"
        );
        assert!(adapter.is_lost(), "{kind:?}");
        for error in [
            adapter.probe().await.unwrap_err(),
            dmm.probe().await.unwrap_err(),
            dmm.write(b"Q?").await.unwrap_err(),
        ] {
            assert!(error.is_connection_lost(), "{kind:?}: {error:?}");
        }
    }
}

#[tokio::test]
async fn a_cut_message_is_ended_before_the_next() {
    // Nobody reads the pty yet, so a large write fills its queue and times out part-way.
    let (device, adapter) = adapter_pair(Kind::Pty, DEFAULT_READ_TMO_MS).await;
    let mut dmm = adapter.link(22, None, settings(200)).unwrap();
    let error = dmm.write(&vec![b'x'; 1 << 20]).await.unwrap_err();
    assert!(
        matches!(error, TransportError::WriteTimeout { .. }),
        "{error:?}"
    );
    let fake = FakeAdapter::serve(device, vec![(DMM, echo("dmm"))]);
    assert_eq!(query(&mut dmm, "NEXT?").await.unwrap(), "dmm:NEXT");
    let log = fake.log.lock().unwrap();
    let data = log.data();
    let [(cut_to, cut), (next_to, next)] = data.as_slice() else {
        panic!("{data:?}");
    };
    assert_eq!((*cut_to, *next_to), (Some(DMM), Some(DMM)));
    assert!(cut.len() < 1 << 20 && cut.iter().all(|&b| b == b'x'));
    assert_eq!(next, b"NEXT?\n");
    let addressing = log
        .commands()
        .iter()
        .filter(|c| c.starts_with("++addr"))
        .count();
    assert_eq!(addressing, 2, "re-addressed after the cut message");
}

#[tokio::test]
async fn invalid_links_and_adapters_are_refused() {
    let (_device, adapter) = adapter_pair(Kind::Tcp, DEFAULT_READ_TMO_MS).await;
    let refused = [
        adapter.link(31, None, settings(100)).unwrap_err(),
        adapter.link(5, Some(95), settings(100)).unwrap_err(),
        adapter.link(5, Some(127), settings(100)).unwrap_err(),
        adapter
            .link(
                5,
                None,
                LinkSettings {
                    read_termination: Vec::new(),
                    ..settings(100)
                },
            )
            .unwrap_err(),
        adapter
            .link_to(
                &Resource::Gpib {
                    board: 1,
                    pad: 5,
                    sad: None,
                },
                settings(100),
            )
            .unwrap_err(),
        adapter
            .link_to(
                &Resource::Tcp {
                    host: "localhost".into(),
                    port: 1,
                },
                settings(100),
            )
            .unwrap_err(),
    ];
    for error in &refused {
        let TransportError::Open { source, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::InvalidInput, "{error:?}");
    }
    assert_eq!(refused[0].to_string(), "cannot open `GPIB0::31::INSTR`");
    let good = adapter
        .link_to(&"GPIB0::7::INSTR".parse().unwrap(), settings(100))
        .unwrap();
    assert_eq!(good.resource().to_string(), "GPIB0::7::INSTR");

    let (_device, resource) = crate::transport::testdev::pty();
    let error = PrologixAdapter::open(&resource, &SerialSettings::default(), 50)
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Open { .. }), "{error:?}");
    let Resource::Serial { path } = resource else {
        unreachable!()
    };
    let prologix = Resource::PrologixSerial { board: 0, path };
    for read_tmo_ms in [0, 3001] {
        let error = PrologixAdapter::open(&prologix, &SerialSettings::default(), read_tmo_ms)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("PRLGX-ASRL0::"), "{error}");
    }
    let gpib = Resource::Gpib {
        board: 0,
        pad: 1,
        sad: None,
    };
    let error = Link::open(&gpib, &SerialSettings::default(), settings(100))
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Open { .. }), "{error:?}");
}

#[test]
fn escaping_examples() {
    assert_eq!(escape(b"*IDN?"), b"*IDN?");
    assert_eq!(escape(b"+1\r\n\x1b"), b"\x1b+1\x1b\r\x1b\n\x1b\x1b");
    assert_eq!(unescape(b"\x1b+1\x1b\r\x1b\n\x1b\x1b"), b"+1\r\n\x1b");
    // What the adapter drops when unescaped.
    assert_eq!(unescape(b"a+b\rc\nd\x1b"), b"abcd");
}

#[test]
fn wire_tracks_cut_messages() {
    let mut wire = Wire::default();
    wire.advance(b"++addr 5\n");
    assert_eq!(wire, Wire::default());
    wire.advance(b"AB\x1b");
    assert_eq!(
        wire,
        Wire {
            in_message: true,
            escaped: true
        }
    );
    wire.advance(b"\n");
    assert_eq!(
        wire,
        Wire {
            in_message: true,
            escaped: false
        }
    );
    wire.advance(b"\n");
    assert_eq!(wire, Wire::default());
}

proptest! {
    #[test]
    fn escape_round_trips(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let escaped = escape(&data);
        prop_assert_eq!(unescape(&escaped), data.clone());
        // Every special byte reaches the adapter escaped, and the message never ends early.
        let mut wire = Wire::default();
        wire.advance(&escaped);
        prop_assert!(!wire.escaped);
        wire.advance(b"\n");
        prop_assert_eq!(wire, Wire::default());
        let mut inside = Wire::default();
        for &byte in &escaped {
            let was_escaped = inside.escaped;
            inside.advance(&[byte]);
            if matches!(byte, b'\n' | b'\r' | b'+') {
                prop_assert!(was_escaped);
            }
            prop_assert!(inside.in_message);
        }
    }

    #[test]
    fn unescape_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let plain = unescape(&data);
        prop_assert!(plain.len() <= data.len());
    }

    #[test]
    fn a_cut_anywhere_is_ended_by_the_recovery(
        data in prop::collection::vec(prop_oneof![Just(ESC), Just(b'\n'), Just(b'+'), any::<u8>()], 0..100),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = escape(&data);
        frame.push(b'\n');
        let (sent, _) = frame.split_at(cut.index(frame.len() + 1));
        let mut wire = Wire::default();
        wire.advance(sent);
        if wire.in_message {
            let end: &[u8] = if wire.escaped { b"\n\n" } else { b"\n" };
            wire.advance(end);
        }
        prop_assert_eq!(wire, Wire::default());
    }
}
