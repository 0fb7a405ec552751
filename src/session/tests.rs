//! Sessions against fake instruments on the far end of real ptys and TCP sockets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::transport::SerialSettings;
use crate::transport::testdev::{self, Device, KINDS, Kind, settings};
use tsagent_bundle::chain::ReadingStatus;

async fn session(kind: Kind, timeout_ms: u64) -> (Device, Session) {
    let (device, link) =
        testdev::pair(kind, &SerialSettings::default(), settings(timeout_ms)).await;
    (device, Session::new("dmm1", link))
}

/// Every line a fake instrument was sent.
type Heard = Arc<Mutex<Vec<String>>>;

/// A small SCPI instrument: fixed answers, an error queue, and a log of what it was sent.
fn instrument(queue: &[&str]) -> (Heard, impl FnMut(&str) -> Option<String> + Send + 'static) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let mut queue: VecDeque<String> = queue.iter().map(|s| (*s).to_owned()).collect();
    let respond = move |line: &str| {
        log.lock().unwrap().push(line.to_owned());
        let reply = match line {
            "*IDN?" => "FLUKE,5720A,1234567,2.1, boot 1".to_owned(),
            "SYST:ERR?" => queue
                .pop_front()
                .unwrap_or_else(|| "+0,\"No error\"".to_owned()),
            "MEAS?" => "+1.00000023E+01".to_owned(),
            "OVLD?" => "-9.90000000E+37".to_owned(),
            "NAN?" => "+9.91000000E+37".to_owned(),
            "UNITS?" => "+01.01103E+00NVDC".to_owned(),
            // Anything else (e.g. `SLOW?`) is never answered.
            _ => return None,
        };
        Some(format!("{reply}\n"))
    };
    (heard, respond)
}

#[tokio::test]
async fn identify_and_record() {
    for kind in KINDS {
        let (device, mut session) = session(kind, 5000).await;
        let (_, respond) = instrument(&[]);
        let _served = device.serve(respond);
        assert_eq!(session.name(), "dmm1");
        let before = SystemTime::now();
        let id = session.identify().await.unwrap();
        assert_eq!(
            id,
            Identity {
                manufacturer: "FLUKE".into(),
                model: "5720A".into(),
                serial: "1234567".into(),
                firmware: "2.1, boot 1".into(),
            },
            "{kind:?}"
        );
        let exchanges = session.take_exchanges();
        let [exchange] = exchanges.as_slice() else {
            panic!("{kind:?}: {exchanges:?}");
        };
        assert_eq!(exchange.command, "*IDN?");
        assert_eq!(
            exchange.reply.as_deref(),
            Some("FLUKE,5720A,1234567,2.1, boot 1")
        );
        assert_eq!(exchange.error, None);
        assert!(exchange.started >= before);
        assert!(exchange.started <= SystemTime::now());
        assert!(session.take_exchanges().is_empty(), "drained");
    }
}

#[tokio::test]
async fn write_sends_and_records_without_reply() {
    let (device, mut session) = session(Kind::Pty, 5000).await;
    let (heard, respond) = instrument(&[]);
    let _served = device.serve(respond);
    session.write("*RST").await.unwrap();
    // The query after it proves the write reached the device first.
    session.query("MEAS?").await.unwrap();
    assert_eq!(*heard.lock().unwrap(), ["*RST", "MEAS?"]);
    let exchanges = session.take_exchanges();
    assert_eq!(exchanges.len(), 2);
    assert_eq!(exchanges[0].command, "*RST");
    assert_eq!(exchanges[0].reply, None);
    assert_eq!(exchanges[0].error, None);
}

#[tokio::test]
async fn drains_the_error_queue() {
    for kind in KINDS {
        let (device, mut session) = session(kind, 5000).await;
        let (_, respond) = instrument(&["-113,\"Undefined header\"", "+102,TRIGGER TOO FAST"]);
        let _served = device.serve(respond);
        let errors = session.drain_errors(10).await.unwrap();
        assert_eq!(
            errors,
            [
                InstrumentError {
                    code: -113,
                    message: "Undefined header".into()
                },
                InstrumentError {
                    code: 102,
                    message: "TRIGGER TOO FAST".into()
                },
            ],
            "{kind:?}"
        );
        assert_eq!(session.take_exchanges().len(), 3, "{kind:?}");
        assert_eq!(session.drain_errors(10).await.unwrap(), [], "{kind:?}");
    }
}

#[tokio::test]
async fn error_queue_that_never_empties_stops_at_the_limit() {
    let (device, mut session) = session(Kind::Tcp, 5000).await;
    let (heard, respond) = instrument(&["-100,\"Command error\""; 20]);
    let _served = device.serve(respond);
    let error = session.drain_errors(3).await.unwrap_err();
    assert!(
        matches!(error, SessionError::ErrorQueueNotEmptied { limit: 3 }),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "error queue not empty after 3 queries");
    assert_eq!(heard.lock().unwrap().len(), 3);
    let error = session.drain_errors(0).await.unwrap_err();
    assert!(
        matches!(error, SessionError::ErrorQueueNotEmptied { limit: 0 }),
        "{error:?}"
    );
}

#[tokio::test]
async fn malformed_error_reply() {
    let (device, mut session) = session(Kind::Tcp, 5000).await;
    let (_, respond) = instrument(&["NO ERROR"]);
    let _served = device.serve(respond);
    let error = session.drain_errors(5).await.unwrap_err();
    assert!(
        matches!(&error, SessionError::BadErrorReply { reply } if reply == "NO ERROR"),
        "{error:?}"
    );
    assert!(!error.is_connection_lost());
}

#[tokio::test]
async fn numbers_overloads_and_junk() {
    for kind in KINDS {
        let (device, mut session) = session(kind, 5000).await;
        let (_, respond) = instrument(&[]);
        let _served = device.serve(respond);
        let (raw, value) = session.read_number("MEAS?").await.unwrap();
        assert_eq!(raw, "+1.00000023E+01");
        assert_eq!(value, Measurement::Value(10.0000023));
        let (raw, value) = session.read_number("OVLD?").await.unwrap();
        assert_eq!(raw, "-9.90000000E+37");
        assert_eq!(value.status(), ReadingStatus::Overload);
        assert_eq!(value, Measurement::Overload { negative: true });
        let (_, value) = session.read_number("NAN?").await.unwrap();
        assert_eq!(value.status(), ReadingStatus::NotANumber);
        let error = session.read_number("UNITS?").await.unwrap_err();
        let SessionError::BadNumber { reply, source } = &error else {
            panic!("{kind:?}: {error:?}");
        };
        assert_eq!(reply, "+01.01103E+00NVDC");
        assert_eq!(
            *source,
            NumberError::Unexpected {
                position: 13,
                found: 'N'
            }
        );
        assert_eq!(
            error.to_string(),
            "reply `+01.01103E+00NVDC` is not a number"
        );
    }
}

#[tokio::test]
async fn transport_failures_name_instrument_and_command() {
    for kind in KINDS {
        let (device, mut session) = session(kind, 100).await;
        let (_, respond) = instrument(&[]);
        let _served = device.serve(respond);
        let error = session.query("SLOW?").await.unwrap_err();
        let SessionError::Transport {
            instrument,
            command,
            source,
        } = &error
        else {
            panic!("{kind:?}: {error:?}");
        };
        assert_eq!((instrument.as_str(), command.as_str()), ("dmm1", "SLOW?"));
        assert!(
            matches!(source, TransportError::Timeout { .. }),
            "{kind:?}: {source:?}"
        );
        assert_eq!(
            error.to_string(),
            "instrument `dmm1`: command `SLOW?` failed"
        );
        assert!(!error.is_connection_lost());
        let exchanges = session.take_exchanges();
        assert_eq!(exchanges.len(), 1);
        assert_eq!(exchanges[0].reply, None);
        assert_eq!(
            exchanges[0].error.as_deref(),
            Some("no complete reply within 100ms (0 bytes received)")
        );
        assert!(exchanges[0].duration >= Duration::from_millis(100));
        // The session recovers for the next command.
        assert_eq!(
            session.query("MEAS?").await.unwrap(),
            "+1.00000023E+01",
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn lost_instrument_is_a_lost_connection() {
    for kind in KINDS {
        let (mut device, mut session) = session(kind, 10_000).await;
        let closer = tokio::spawn(async move {
            // Hear one command, then vanish like an unplugged adapter.
            device.read_line().await;
        });
        let error = session.query("MEAS?").await.unwrap_err();
        closer.await.unwrap();
        assert!(error.is_connection_lost(), "{kind:?}: {error:?}");
        let exchanges = session.take_exchanges();
        assert_eq!(
            exchanges[0].error.as_deref(),
            Some("connection lost"),
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn recording_can_be_switched_off() {
    let (device, mut session) = session(Kind::Tcp, 5000).await;
    let (_, respond) = instrument(&[]);
    let _served = device.serve(respond);
    assert!(session.is_recording());
    session.set_recording(false);
    assert!(!session.is_recording());
    session.query("MEAS?").await.unwrap();
    assert!(session.take_exchanges().is_empty());
    session.set_recording(true);
    session.query("MEAS?").await.unwrap();
    assert_eq!(session.take_exchanges().len(), 1);
}

#[tokio::test]
async fn query_with_timeout_restores_the_deadline() {
    let (device, mut session) = session(Kind::Tcp, 5000).await;
    let (_, respond) = instrument(&[]);
    let _served = device.serve(respond);
    let error = session
        .query_with_timeout("SLOW?", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("SLOW?"));
    assert_eq!(session.link().settings().timeout, Duration::from_secs(5));
    session.set_timeout(Duration::from_secs(7));
    assert_eq!(session.link().settings().timeout, Duration::from_secs(7));
}

#[tokio::test]
async fn exchange_log_is_bounded() {
    let (_device, mut session) = session(Kind::Tcp, 5000).await;
    let exchange = |n: usize| Exchange {
        command: format!("C{n}"),
        reply: None,
        started: SystemTime::UNIX_EPOCH,
        duration: Duration::ZERO,
        error: None,
    };
    for n in 0..MAX_EXCHANGES + 5 {
        session.record(exchange(n));
    }
    assert_eq!(session.dropped_exchanges(), 5);
    let kept = session.take_exchanges();
    assert_eq!(kept.len(), MAX_EXCHANGES);
    assert_eq!(kept[0].command, "C5");
}

#[test]
fn session_error_messages() {
    let errors = [
        SessionError::BadIdentity {
            reply: "HP3458A".into(),
        },
        SessionError::BadErrorReply { reply: "x".into() },
        SessionError::BadNumber {
            reply: "\u{1}".into(),
            source: NumberError::Empty,
        },
        SessionError::Transport {
            instrument: "dmm1".into(),
            command: "MEAS?".into(),
            source: TransportError::Disconnected,
        },
    ];
    for error in &errors {
        let message = error.to_string();
        assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(
        errors[0].to_string(),
        "identity reply `HP3458A` is not `manufacturer,model,serial,firmware`"
    );
    assert_eq!(errors[2].to_string(), "reply `\\x01` is not a number");
    assert!(errors[3].is_connection_lost());
    assert!(!errors[0].is_connection_lost());
}

#[tokio::test]
async fn binary_queries_are_logged_by_size() {
    for kind in KINDS {
        let (mut device, mut session) = session(kind, 5000).await;
        let device_task = tokio::spawn(async move {
            assert_eq!(device.read_line().await.as_deref(), Some("FETC?"));
            device.send(b"#18\n\r\n\r\n\r\n\r\n").await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("RMEM 1,2"));
            let mut raw = 1.0f64.to_be_bytes().to_vec();
            raw.extend_from_slice(&2.0f64.to_be_bytes());
            device.send(&raw).await.unwrap();
            assert_eq!(device.read_line().await.as_deref(), Some("BIG?"));
            device.send(b"#41000").await.unwrap();
            device
        });
        assert_eq!(
            session.query_block("FETC?", 100).await.unwrap(),
            b"\n\r\n\r\n\r\n\r"
        );
        let raw = session.query_exact("RMEM 1,2", 16, false).await.unwrap();
        assert_eq!(raw.len(), 16);
        let error = session.query_block("BIG?", 999).await.unwrap_err();
        assert!(
            matches!(
                &error,
                SessionError::Transport {
                    source: TransportError::BlockTooLong {
                        claimed: 1000,
                        cap: 999
                    },
                    ..
                }
            ),
            "{kind:?}: {error:?}"
        );
        device_task.await.unwrap();
        let exchanges = session.take_exchanges();
        let logged: Vec<(&str, Option<&str>)> = exchanges
            .iter()
            .map(|e| (e.command.as_str(), e.reply.as_deref()))
            .collect();
        assert_eq!(
            logged,
            [
                ("FETC?", Some("<8-byte block>")),
                ("RMEM 1,2", Some("<16-byte block>")),
                ("BIG?", None),
            ],
            "{kind:?}"
        );
        assert_eq!(
            exchanges[2].error.as_deref(),
            Some("block of 1000 bytes exceeds the cap of 999")
        );
    }
}

#[tokio::test]
async fn clear_is_recorded() {
    let (mut device, mut session) = session(Kind::Pty, 5000).await;
    session.write("MEAS?").await.unwrap();
    assert_eq!(device.read_line().await.as_deref(), Some("MEAS?"));
    device.send(b"stale\n").await.unwrap();
    device.wait_link_readable().await;
    session.clear().await.unwrap();
    let (_, respond) = instrument(&[]);
    let _served = device.serve(respond);
    assert_eq!(session.query("MEAS?").await.unwrap(), "+1.00000023E+01");
    let exchanges = session.take_exchanges();
    assert_eq!(exchanges[1].command, "<device clear>");
    assert_eq!(exchanges[1].reply, None);
    assert_eq!(exchanges[1].error, None);
}
