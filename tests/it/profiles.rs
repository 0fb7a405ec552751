//! Every built-in driver profile against the simulated instrument of its model, through the real
//! transport, session and driver code: identity, init, every operation the profile defines, and
//! the error queue (an instrument's own error text drained, then empty; a refused step failing
//! with that text).
//!
//! Each profile runs over a pseudo-terminal with its serial settings, over TCP when the model has
//! a LAN socket, and behind a simulated Prologix adapter when it has GPIB; one test puts every
//! GPIB model on one bus and interleaves their operations so the adapter re-addresses between
//! every step. The simulators run with realistic timing off, so only the waits a profile itself
//! makes (a calibrator settling, a thermometer's next measurement) take time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tsagent::drivers::exec::{self, DriverError, OpOutcome};
use tsagent::drivers::{Profile, Registry, Value};
use tsagent::session::{Identity, InstrumentError, Session};
use tsagent::transport::{
    DataBits, Link, LinkSettings, Parity, PrologixAdapter, Resource, SerialSettings, StopBits,
    prologix::DEFAULT_READ_TMO_MS,
};
use tsagent_sim::{
    BusSpec, FaultHandle, FaultKind, PersonalityId, PtyServer, SimParams, SimSpec, TcpServer,
};

/// The firmware field every simulated model reports.
const SIM_FIRMWARE: &str = concat!("tsagent-sim-", env!("CARGO_PKG_VERSION"));

/// Readings a `read_buffer` step asks for.
const BUFFER_COUNT: usize = 5;

/// The 5720A simulator's settle time with realistic timing off.
const SIM_SETTLE: Duration = Duration::from_millis(100);

/// ISR? bit 12: output settled.
const ISR_SETTLED: u64 = 0x1000;

/// The standard as every test simulates it: the default 10 V Zener, its noise included.
fn params() -> SimParams {
    SimParams::default()
}

/// The true value of the standard, V, near enough for a check in the ppm range: the
/// simulators start at simulated day 0 and run in real time, so drift and the lab temperature
/// cycle add well under a µV during a test.
fn standard_volts() -> f64 {
    let p = params();
    p.artefact_value(0.0)
}

// --- What each profile does and what its instrument should answer -----------------------------

/// What a step's result must look like.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// No values (a command-only operation).
    Nothing,
    /// One value within `tol` of `value`.
    Near { value: f64, tol: f64 },
    /// [`BUFFER_COUNT`] values, each within `tol` of `value`.
    Buffer { value: f64, tol: f64 },
    /// Pressure, temperature and humidity of a lab.
    Environment,
    /// No values; the calibrator's output changes, so it must settle again.
    Changes,
    /// A status poll that ends once the 5720A's settled bit shows, [`SIM_SETTLE`] or more
    /// after the output last changed.
    Settles,
}

/// One operation with parameters and the expected result.
#[derive(Debug, Clone, Copy)]
struct Step {
    op: &'static str,
    params: &'static [(&'static str, &'static str)],
    check: Check,
}

const fn step(op: &'static str, check: Check) -> Step {
    Step {
        op,
        params: &[],
        check,
    }
}

const fn step_with(
    op: &'static str,
    params: &'static [(&'static str, &'static str)],
    check: Check,
) -> Step {
    Step { op, params, check }
}

/// A step the instrument refuses, and the entry its error queue then holds.
#[derive(Debug, Clone, Copy)]
struct Refused {
    op: &'static str,
    params: &'static [(&'static str, &'static str)],
    code: i32,
    /// The instrument's own text, as the profile reads it (empty where it has none).
    message: &'static str,
}

/// One profile and the simulated model it must drive.
#[derive(Debug, Clone, Copy)]
struct Case {
    profile: &'static str,
    personality: PersonalityId,
    manufacturer: &'static str,
    model: &'static str,
    /// Whether the identity carries the unit's serial number.
    reports_serial: bool,
    /// Whether it carries the firmware revision (`ID?` on a 3458A names the model only).
    reports_firmware: bool,
    /// Every operation of the profile, in an order that makes sense on the instrument.
    plan: &'static [Step],
    /// What an injected error (the `errors=N` fault) reads as; `None` without an error queue.
    injected: Option<(i32, &'static str)>,
    refused: Option<Refused>,
}

const VOLTS: Check = Check::Near {
    value: 10.0,
    tol: 1e-4,
};
const VOLTS_BUFFER: Check = Check::Buffer {
    value: 10.0,
    tol: 1e-4,
};
const OHMS: Check = Check::Near {
    value: 10_000.0,
    tol: 0.1,
};
const COUNT: &[(&str, &str)] = &[("count", "5")];

const TRUEVOLT_PLAN: &[Step] = &[
    step("configure", Check::Nothing),
    step("read", VOLTS),
    step_with("read_buffer", COUNT, VOLTS_BUFFER),
    step("read", VOLTS),
];

const DEVICE_SPECIFIC: (i32, &str) = (-300, "Device-specific error");

const TRUEVOLT_REFUSED: Refused = Refused {
    op: "configure",
    params: &[("range", "5000")],
    code: -222,
    message: "Data out of range",
};

const CASES: &[Case] = &[
    Case {
        profile: "generic-scpi-dmm",
        personality: PersonalityId::GenericScpiDmm,
        manufacturer: "TSAGENT",
        model: "SIM-DMM",
        reports_serial: false,
        reports_firmware: true,
        plan: &[step("configure", Check::Nothing), step("read", VOLTS)],
        injected: Some(DEVICE_SPECIFIC),
        refused: Some(TRUEVOLT_REFUSED),
    },
    Case {
        profile: "keysight-34470a",
        personality: PersonalityId::Keysight34470a,
        manufacturer: "Keysight Technologies",
        model: "34470A",
        reports_serial: true,
        reports_firmware: true,
        plan: TRUEVOLT_PLAN,
        injected: Some(DEVICE_SPECIFIC),
        refused: Some(TRUEVOLT_REFUSED),
    },
    Case {
        profile: "keysight-34465a",
        personality: PersonalityId::Keysight34465a,
        manufacturer: "Keysight Technologies",
        model: "34465A",
        reports_serial: true,
        reports_firmware: true,
        plan: TRUEVOLT_PLAN,
        injected: Some(DEVICE_SPECIFIC),
        refused: Some(TRUEVOLT_REFUSED),
    },
    Case {
        profile: "keysight-3458a",
        personality: PersonalityId::Keysight3458a,
        manufacturer: "HP",
        model: "3458A",
        reports_serial: false,
        reports_firmware: false,
        plan: &[
            step("configure", Check::Nothing),
            step("read", VOLTS),
            step_with("read_buffer", COUNT, VOLTS_BUFFER),
            step("read", VOLTS),
        ],
        injected: Some((102, "TRIGGER TOO FAST")),
        refused: Some(Refused {
            op: "configure",
            params: &[("nplc", "5000")],
            code: 106,
            message: "PARAMETER OUT OF RANGE",
        }),
    },
    Case {
        profile: "fluke-8508a",
        personality: PersonalityId::Fluke8508a,
        manufacturer: "FLUKE",
        model: "8508A",
        reports_serial: true,
        reports_firmware: true,
        plan: &[
            step("configure", Check::Nothing),
            step("read", VOLTS),
            step("fetch", VOLTS),
            step("configure_ohms", Check::Nothing),
            step("read", OHMS),
            step_with("configure_true_ohms", &[("range", "10E3")], Check::Nothing),
            step("read", OHMS),
            step("configure", Check::Nothing),
            step("read", VOLTS),
        ],
        // *ESR? bit 3, device-dependent error; the 8508A has no error text.
        injected: Some((8, "")),
        refused: Some(Refused {
            op: "configure",
            params: &[("range", "5000")],
            code: 16,
            message: "",
        }),
    },
    Case {
        profile: "keithley-2002",
        personality: PersonalityId::Keithley2002,
        manufacturer: "KEITHLEY INSTRUMENTS INC.",
        model: "MODEL 2002",
        reports_serial: true,
        reports_firmware: true,
        plan: &[
            step("configure", Check::Nothing),
            step("read", VOLTS),
            step_with("read_buffer", COUNT, VOLTS_BUFFER),
            step("read", VOLTS),
        ],
        injected: Some(DEVICE_SPECIFIC),
        refused: Some(Refused {
            op: "configure",
            params: &[("range", "5000")],
            code: -222,
            message: "Data out of range",
        }),
    },
    Case {
        profile: "keithley-dmm6500",
        personality: PersonalityId::KeithleyDmm6500,
        manufacturer: "KEITHLEY INSTRUMENTS",
        model: "MODEL DMM6500",
        reports_serial: true,
        reports_firmware: true,
        plan: &[
            step("configure", Check::Nothing),
            step("read", VOLTS),
            step_with("read_buffer", COUNT, VOLTS_BUFFER),
            step("read", VOLTS),
        ],
        injected: Some(DEVICE_SPECIFIC),
        refused: Some(Refused {
            op: "configure",
            params: &[("nplc", "50")],
            code: -222,
            message: "Data out of range",
        }),
    },
    Case {
        profile: "fluke-5720a",
        personality: PersonalityId::Fluke5720a,
        manufacturer: "FLUKE",
        model: "5720A",
        reports_serial: true,
        reports_firmware: true,
        plan: &[
            step("source_set", Check::Changes),
            step("source_operate", Check::Changes),
            step("source_settled", Check::Settles),
            step(
                "source_value",
                Check::Near {
                    value: 10.0,
                    tol: 1e-9,
                },
            ),
            step("source_set_ohms", Check::Changes),
            step("source_settled", Check::Settles),
            step(
                "source_value",
                // The calibrated value of the 10 kΩ artefact, not its nominal value.
                Check::Near {
                    value: 10_000.031,
                    tol: 1e-6,
                },
            ),
            step("source_standby", Check::Nothing),
        ],
        injected: Some((1306, "Output tripped")),
        refused: Some(Refused {
            op: "source_set",
            params: &[("value", "5000")],
            code: 1304,
            message: "Output limit exceeded",
        }),
    },
    Case {
        profile: "fluke-1594a",
        personality: PersonalityId::Fluke1594a,
        manufacturer: "FLUKE",
        model: "1594A",
        reports_serial: true,
        reports_firmware: true,
        plan: &[
            step("configure", Check::Nothing),
            // An SPRT in a water triple-point cell: 0.01 °C, moved by the standard's ppm.
            step(
                "read",
                Check::Near {
                    value: 0.01,
                    tol: 0.05,
                },
            ),
            step(
                "read",
                Check::Near {
                    value: 0.01,
                    tol: 0.05,
                },
            ),
        ],
        injected: Some((-230, "Data corrupt or stale")),
        refused: Some(Refused {
            op: "configure",
            params: &[("type", "BOGUS")],
            code: -224,
            message: "Illegal parameter value",
        }),
    },
    Case {
        profile: "vaisala-ptu300",
        personality: PersonalityId::VaisalaPtu300,
        manufacturer: "",
        model: "PTU300",
        // From the `Serial number` line of the several-line `?` reply.
        reports_serial: true,
        reports_firmware: true,
        plan: &[step("env_read", Check::Environment)],
        injected: None,
        refused: None,
    },
];

fn case(profile: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.profile == profile)
        .unwrap_or_else(|| panic!("no case for `{profile}`"))
}

/// Longest any reply or status poll may take here: the simulators answer at once, so a
/// profile's generous deadlines (ten minutes for a buffer) would only turn a failure into a hang.
const PATIENCE: Duration = Duration::from_secs(5);

fn builtin(id: &str) -> Profile {
    impatient(Registry::builtin().unwrap().get(id).unwrap().clone())
}

/// The profile with every deadline capped at [`PATIENCE`].
fn impatient(mut profile: Profile) -> Profile {
    profile.io.timeout = profile.io.timeout.min(PATIENCE);
    for op in profile.operations.values_mut() {
        op.timeout = op.timeout.map(|t| t.min(PATIENCE));
        if let Some(wait) = &mut op.wait {
            wait.timeout = wait.timeout.min(PATIENCE);
        }
    }
    profile
}

// --- Opening sessions ----------------------------------------------------------------------------

/// A running simulator of any kind.
enum Server {
    Pty(PtyServer),
    Tcp(TcpServer),
}

impl Server {
    fn faults(&self) -> FaultHandle {
        match self {
            Server::Pty(s) => s.faults(),
            Server::Tcp(s) => s.faults(),
        }
    }
}

/// The framing a profile asks for.
fn link_settings(profile: &Profile) -> LinkSettings {
    LinkSettings {
        write_termination: profile.io.write_termination.clone(),
        read_termination: profile.io.read_termination.clone(),
        timeout: profile.io.timeout,
        ..LinkSettings::default()
    }
}

/// The serial settings a profile defaults to (9600 8N1 where it names none).
fn serial_settings(profile: &Profile) -> SerialSettings {
    let default = SerialSettings::default();
    SerialSettings {
        baud: profile.io.baud.unwrap_or(default.baud),
        data_bits: profile.io.data_bits.unwrap_or(default.data_bits),
        parity: profile.io.parity.unwrap_or(default.parity),
        stop_bits: profile.io.stop_bits.unwrap_or(default.stop_bits),
        flow_control: default.flow_control,
    }
}

/// The profile's instrument, alone on a pseudo-terminal opened with the profile's serial
/// settings.
async fn over_pty(case: &Case, profile: &Profile) -> (Server, Session) {
    let server =
        PtyServer::start_spec(SimSpec::instrument(case.personality, params()), None).unwrap();
    let resource = Resource::Serial {
        path: server.path().to_owned(),
    };
    let link = Link::open(&resource, &serial_settings(profile), link_settings(profile))
        .await
        .unwrap();
    (Server::Pty(server), Session::new(case.profile, link))
}

/// The profile's instrument on a raw TCP socket.
async fn over_tcp(case: &Case, profile: &Profile) -> (Server, Session) {
    let server = TcpServer::start_spec(
        SimSpec::instrument(case.personality, params()),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let resource = Resource::Tcp {
        host: "127.0.0.1".into(),
        port: server.local_addr().port(),
    };
    let link = Link::open(
        &resource,
        &SerialSettings::default(),
        link_settings(profile),
    )
    .await
    .unwrap();
    (Server::Tcp(server), Session::new(case.profile, link))
}

/// A simulated Prologix bus with `devices`, the adapter reached over a pseudo-terminal
/// (GPIB-USB) or TCP (GPIB-ETHERNET).
async fn bus(devices: &[(u8, PersonalityId)], tcp: bool) -> (Server, PrologixAdapter) {
    let spec = SimSpec::prologix(BusSpec::new(devices.iter().copied()).unwrap(), params());
    let (server, resource) = if tcp {
        let server = TcpServer::start_spec(spec, "127.0.0.1:0").await.unwrap();
        let resource = Resource::PrologixTcp {
            board: 0,
            host: "127.0.0.1".into(),
            port: server.local_addr().port(),
        };
        (Server::Tcp(server), resource)
    } else {
        let server = PtyServer::start_spec(spec, None).unwrap();
        let resource = Resource::PrologixSerial {
            board: 0,
            path: server.path().to_owned(),
        };
        (Server::Pty(server), resource)
    };
    let serial = SerialSettings {
        baud: 115_200,
        ..SerialSettings::default()
    };
    let adapter = PrologixAdapter::open(&resource, &serial, DEFAULT_READ_TMO_MS)
        .await
        .unwrap();
    (server, adapter)
}

/// A session to the instrument at `address` behind `adapter`.
fn gpib_session(adapter: &PrologixAdapter, address: u8, profile: &Profile) -> Session {
    let resource = Resource::Gpib {
        board: 0,
        pad: address,
        sad: None,
    };
    let link = adapter.link_to(&resource, link_settings(profile)).unwrap();
    Session::new(format!("{}@{address}", profile.id), link)
}

// --- Driving one instrument ------------------------------------------------------------------------

/// An instrument under test: its profile, its case and where its simulator takes faults.
struct Dut {
    case: &'static Case,
    profile: Profile,
    session: Session,
    faults: FaultHandle,
    /// Its GPIB address on a bus (faults are aimed at it).
    address: Option<u8>,
    /// The serial number the simulator gives it.
    serial: String,
    /// When a step that changes a calibrator's output started.
    output_changed: Option<Instant>,
}

impl Dut {
    fn new(
        case: &'static Case,
        profile: Profile,
        session: Session,
        faults: FaultHandle,
        address: Option<u8>,
    ) -> Self {
        let serial = case.personality.default_serial(address.unwrap_or(1));
        Self {
            case,
            profile,
            session,
            faults,
            address,
            serial,
            output_changed: None,
        }
    }

    fn context(&self) -> String {
        format!("{} ({})", self.profile.id, self.session.name())
    }

    async fn run(&mut self, op: &str, params: &[(&str, &str)]) -> Result<OpOutcome, DriverError> {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        exec::run(
            &self.profile,
            &mut self.session,
            op,
            &BTreeMap::new(),
            &params,
        )
        .await
    }

    /// Identity and init, as a connect does: the identity must be the simulated unit's.
    async fn connect(&mut self) {
        let ctx = self.context();
        let identity = exec::identify(&self.profile, &mut self.session)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: identify: {}", chain(&e)));
        self.check_identity(&identity);
        exec::init(&self.profile, &mut self.session)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: init: {}", chain(&e)));
        let left = exec::drain_errors(&self.profile, &mut self.session)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: drain after init: {}", chain(&e)));
        assert!(left.is_empty(), "{ctx}: errors after init: {left:?}");
    }

    fn check_identity(&self, identity: &Identity) {
        let ctx = self.context();
        let serial = if self.case.reports_serial {
            self.serial.as_str()
        } else if self.case.personality == PersonalityId::GenericScpiDmm {
            identity.serial.as_str()
        } else {
            ""
        };
        assert_eq!(
            (
                identity.manufacturer.as_str(),
                identity.model.as_str(),
                identity.serial.as_str(),
                identity.firmware.as_str()
            ),
            (
                self.case.manufacturer,
                self.case.model,
                serial,
                if self.case.reports_firmware {
                    SIM_FIRMWARE
                } else {
                    ""
                }
            ),
            "{ctx}: identity"
        );
    }

    /// Runs one step of the plan and checks its result.
    async fn step(&mut self, step: &Step) {
        let ctx = format!("{}: {}", self.context(), step.op);
        self.session.take_exchanges();
        if matches!(step.check, Check::Changes) {
            self.output_changed = Some(Instant::now());
        }
        let outcome = self
            .run(step.op, step.params)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {}", chain(&e)));
        match step.check {
            Check::Nothing | Check::Changes => {
                assert!(outcome.values.is_empty(), "{ctx}: {outcome:?}");
            }
            Check::Near { value, tol } => {
                let got = numbers(&outcome.values, &ctx);
                assert_eq!(got.len(), 1, "{ctx}: {got:?}");
                assert_near(got[0], value, tol, &ctx);
            }
            Check::Buffer { value, tol } => {
                let got = numbers(&outcome.values, &ctx);
                assert_eq!(got.len(), BUFFER_COUNT, "{ctx}: {got:?}");
                for v in got {
                    assert_near(v, value, tol, &ctx);
                }
            }
            Check::Environment => check_environment(&outcome.values, &ctx),
            Check::Settles => self.check_settled(&ctx),
        }
        // Whether or not the operation checks the queue itself, it must leave nothing in it: a
        // command the instrument does not know shows here.
        let left = exec::drain_errors(&self.profile, &mut self.session)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: drain: {}", chain(&e)));
        assert!(left.is_empty(), "{ctx}: left in the error queue: {left:?}");
    }

    /// The settle poll asked `ISR?` until bit 12 showed, and not once more, and returned no
    /// sooner than the simulator's settle time after the output changed.
    fn check_settled(&mut self, ctx: &str) {
        let polls: Vec<u64> = self
            .session
            .take_exchanges()
            .into_iter()
            .filter(|e| e.command == "ISR?")
            .map(|e| e.reply.unwrap_or_default().trim().parse::<u64>().unwrap())
            .collect();
        let (last, before) = polls.split_last().unwrap();
        assert_ne!(last & ISR_SETTLED, 0, "{ctx}: polls {polls:?}");
        assert!(
            before.iter().all(|isr| isr & ISR_SETTLED == 0),
            "{ctx}: polled on after settling: {polls:?}"
        );
        let since_change = self.output_changed.unwrap().elapsed();
        assert!(
            since_change >= SIM_SETTLE,
            "{ctx}: settled {since_change:?} after the change ({polls:?})"
        );
    }

    /// Every step of the plan, and the plan covers every operation of the profile.
    async fn operations(&mut self) {
        let plan = self.case.plan;
        for s in plan {
            self.step(s).await;
        }
        self.check_plan_covers_profile();
    }

    fn check_plan_covers_profile(&self) {
        let planned: BTreeSet<&str> = self.case.plan.iter().map(|s| s.op).collect();
        let defined: BTreeSet<&str> = self.profile.operations.keys().map(String::as_str).collect();
        assert_eq!(
            planned, defined,
            "{}: operations exercised",
            self.profile.id
        );
    }

    /// Arms `count` errors in the instrument and waits until the simulator queued them.
    async fn inject_errors(&self, count: u32) {
        let before = self.faults.fired();
        let mut fault = tsagent_sim::Fault::now(FaultKind::Errors { count });
        if let Some(a) = self.address {
            fault = fault.at(a);
        }
        self.faults.arm(fault);
        tokio::time::timeout(Duration::from_secs(10), self.faults.wait_fired(before + 1))
            .await
            .unwrap();
    }

    /// The error queue: injected errors drain with the instrument's text and then the queue
    /// is empty; a refused step fails with the instrument's text and leaves the queue empty.
    async fn errors(&mut self) {
        let ctx = self.context();
        let Some((code, message)) = self.case.injected else {
            assert!(
                self.profile.errors.is_none(),
                "{ctx}: no injected error listed"
            );
            return;
        };
        // The 8508A's *ESR? is a register: two device errors read as one.
        let queued = if self.profile.id == "fluke-8508a" {
            1
        } else {
            2
        };
        self.inject_errors(2).await;
        let drained = exec::drain_errors(&self.profile, &mut self.session)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: drain: {}", chain(&e)));
        let expected = InstrumentError {
            code,
            message: message.to_owned(),
        };
        assert_eq!(drained, vec![expected; queued], "{ctx}: drained");
        let again = exec::drain_errors(&self.profile, &mut self.session)
            .await
            .unwrap();
        assert!(
            again.is_empty(),
            "{ctx}: queue not empty after a drain: {again:?}"
        );

        if let Some(refused) = self.case.refused {
            match self.run(refused.op, refused.params).await {
                Err(DriverError::InstrumentReported { errors }) => {
                    let expected = InstrumentError {
                        code: refused.code,
                        message: refused.message.to_owned(),
                    };
                    assert_eq!(errors, vec![expected], "{ctx}: {} refused", refused.op);
                }
                other => panic!("{ctx}: {} with {:?}: {other:?}", refused.op, refused.params),
            }
            let after = exec::drain_errors(&self.profile, &mut self.session)
                .await
                .unwrap();
            assert!(
                after.is_empty(),
                "{ctx}: left after a refused step: {after:?}"
            );
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn numbers(values: &[Value], ctx: &str) -> Vec<f64> {
    values
        .iter()
        .map(|v| {
            v.measurement
                .and_then(|m| m.value())
                .unwrap_or_else(|| panic!("{ctx}: not a number: {v:?}"))
        })
        .collect()
}

fn assert_near(got: f64, want: f64, tol: f64, ctx: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{ctx}: {got} is not within {tol} of {want}"
    );
}

/// Pressure, temperature and humidity, named and with units, plausible for a lab.
fn check_environment(values: &[Value], ctx: &str) {
    let by_name: BTreeMap<&str, (&str, f64)> = values
        .iter()
        .map(|v| {
            let value = v.measurement.and_then(|m| m.value()).unwrap();
            (
                v.name.as_deref().unwrap(),
                (v.unit.as_deref().unwrap(), value),
            )
        })
        .collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        ["humidity", "pressure", "temperature"],
        "{ctx}"
    );
    let (unit, p) = by_name["pressure"];
    assert!(
        unit == "hPa" && (1000.0..1030.0).contains(&p),
        "{ctx}: {p} {unit}"
    );
    let (unit, t) = by_name["temperature"];
    assert!(
        unit == "°C" && (22.0..24.0).contains(&t),
        "{ctx}: {t} {unit}"
    );
    let (unit, rh) = by_name["humidity"];
    assert!(
        unit == "%RH" && (10.0..90.0).contains(&rh),
        "{ctx}: {rh} {unit}"
    );
}

// --- The tests -------------------------------------------------------------------------------------

/// Everything one instrument does, on a session already open.
async fn exercise(dut: &mut Dut) {
    dut.connect().await;
    dut.operations().await;
    dut.errors().await;
    // After the errors, the instrument still works.
    if let Some(last) = dut
        .case
        .plan
        .iter()
        .rev()
        .find(|s| !matches!(s.check, Check::Settles))
    {
        dut.step(last).await;
    }
}

async fn pty(profile: &str) {
    let case = case(profile);
    let profile = builtin(profile);
    let (server, session) = over_pty(case, &profile).await;
    let mut dut = Dut::new(case, profile, session, server.faults(), None);
    exercise(&mut dut).await;
}

async fn tcp(profile: &str) {
    let case = case(profile);
    let profile = builtin(profile);
    let (server, session) = over_tcp(case, &profile).await;
    let mut dut = Dut::new(case, profile, session, server.faults(), None);
    exercise(&mut dut).await;
}

/// The instrument alone on a bus behind a Prologix GPIB-USB adapter (a pseudo-terminal).
async fn gpib(profile: &str) {
    let case = case(profile);
    let profile = builtin(profile);
    let address = 22;
    let (server, adapter) = bus(&[(address, case.personality)], false).await;
    let session = gpib_session(&adapter, address, &profile);
    let mut dut = Dut::new(case, profile, session, server.faults(), Some(address));
    exercise(&mut dut).await;
}

macro_rules! per_profile {
    ($runner:ident: $($name:ident => $id:literal),* $(,)?) => {
        mod $runner {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$runner($id).await;
                }
            )*
        }
    };
}

per_profile!(pty:
    generic_scpi_dmm => "generic-scpi-dmm",
    keysight_34470a => "keysight-34470a",
    keysight_34465a => "keysight-34465a",
    keysight_3458a => "keysight-3458a",
    fluke_8508a => "fluke-8508a",
    keithley_2002 => "keithley-2002",
    keithley_dmm6500 => "keithley-dmm6500",
    fluke_5720a => "fluke-5720a",
    fluke_1594a => "fluke-1594a",
    vaisala_ptu300 => "vaisala-ptu300",
);

// The models with a LAN raw socket (5025).
per_profile!(tcp:
    generic_scpi_dmm => "generic-scpi-dmm",
    keysight_34470a => "keysight-34470a",
    keysight_34465a => "keysight-34465a",
    keithley_dmm6500 => "keithley-dmm6500",
);

// The models with a GPIB port.
per_profile!(gpib:
    generic_scpi_dmm => "generic-scpi-dmm",
    keysight_34470a => "keysight-34470a",
    keysight_34465a => "keysight-34465a",
    keysight_3458a => "keysight-3458a",
    fluke_8508a => "fluke-8508a",
    keithley_2002 => "keithley-2002",
    keithley_dmm6500 => "keithley-dmm6500",
    fluke_5720a => "fluke-5720a",
    fluke_1594a => "fluke-1594a",
);

/// Every profile has a case here, and every case is a built-in profile.
#[test]
fn every_builtin_profile_has_a_case() {
    let registry = Registry::builtin().unwrap();
    let profiles: BTreeSet<&str> = registry.ids().collect();
    let cases: BTreeSet<&str> = CASES.iter().map(|c| c.profile).collect();
    assert_eq!(profiles, cases);
    for c in CASES {
        assert_eq!(c.personality.as_str(), c.profile);
    }
    // The pty tests open each port as its profile says: the Vaisala's 4800 7E1, 9600 8N1
    // where a profile names nothing.
    let vaisala = serial_settings(&builtin("vaisala-ptu300"));
    assert_eq!(
        (
            vaisala.baud,
            vaisala.data_bits,
            vaisala.parity,
            vaisala.stop_bits
        ),
        (4800, DataBits::Seven, Parity::Even, StopBits::One)
    );
    assert_eq!(
        serial_settings(&builtin("fluke-5720a")),
        SerialSettings::default()
    );
}

/// Every GPIB model on one bus behind a Prologix GPIB-ETHERNET adapter, their operations
/// interleaved step by step so the adapter is re-addressed between nearly every exchange; then
/// an error injected into one instrument shows in its queue only.
#[tokio::test]
async fn gpib_bus_interleaves_every_gpib_model() {
    let devices: &[(u8, &str)] = &[
        (22, "keysight-3458a"),
        (5, "fluke-5720a"),
        (9, "fluke-8508a"),
        (16, "keithley-2002"),
        (17, "keithley-dmm6500"),
        (18, "keysight-34470a"),
        (19, "keysight-34465a"),
        (20, "fluke-1594a"),
        (3, "generic-scpi-dmm"),
    ];
    let personalities: Vec<(u8, PersonalityId)> = devices
        .iter()
        .map(|(a, id)| (*a, case(id).personality))
        .collect();
    let (server, adapter) = bus(&personalities, true).await;
    let mut duts: Vec<Dut> = devices
        .iter()
        .map(|(address, id)| {
            let profile = builtin(id);
            let session = gpib_session(&adapter, *address, &profile);
            Dut::new(case(id), profile, session, server.faults(), Some(*address))
        })
        .collect();
    for dut in &mut duts {
        dut.connect().await;
    }
    let longest = duts.iter().map(|d| d.case.plan.len()).max().unwrap();
    for i in 0..longest {
        for dut in &mut duts {
            if let Some(s) = dut.case.plan.get(i) {
                dut.step(s).await;
            }
        }
    }
    // One instrument's errors stay in its own queue.
    let (target, others) = duts.split_first_mut().unwrap();
    target.inject_errors(1).await;
    for other in others.iter_mut() {
        let errors = exec::drain_errors(&other.profile, &mut other.session)
            .await
            .unwrap();
        assert!(errors.is_empty(), "{}: {errors:?}", other.context());
    }
    let errors = exec::drain_errors(&target.profile, &mut target.session)
        .await
        .unwrap();
    assert_eq!(errors.len(), 1, "{}: {errors:?}", target.context());
    for dut in &mut duts {
        dut.errors().await;
    }
}

/// The Truevolt buffer read decodes both byte orders: a lab that switches the meter to
/// `FORM:BORD SWAP` overrides the command and the reply's byte order together.
#[tokio::test]
async fn truevolt_buffer_reads_either_byte_order() {
    let case = case("keysight-34470a");
    let registry = Registry::builtin().unwrap();
    let swapped: toml::Table = toml::from_str(
        r#"
        [operations.read_buffer]
        setup = ["FORM:DATA REAL,64", "FORM:BORD SWAP", "TRIG:SOUR IMM", "TRIG:COUN 1", "SAMP:COUN {count}"]
        reply = { kind = "block", format = "real64", byte_order = "little" }
        "#,
    )
    .unwrap();
    let profile = impatient(
        registry
            .with_overrides(case.profile, &swapped, "test")
            .unwrap(),
    );
    let (server, session) = over_tcp(case, &profile).await;
    let mut dut = Dut::new(case, profile, session, server.faults(), None);
    dut.connect().await;
    dut.step(&step_with("read_buffer", COUNT, VOLTS_BUFFER))
        .await;
    // The built-in profile, on the same meter left in SWAP, puts it back to NORM itself.
    dut.profile = builtin(case.profile);
    dut.step(&step_with("read_buffer", COUNT, VOLTS_BUFFER))
        .await;
    // Reading a swapped block as big-endian gives garbage, not 10 V: the check can fail.
    let swap_only: toml::Table = toml::from_str(
        r#"
        [operations.read_buffer]
        setup = ["FORM:DATA REAL,64", "FORM:BORD SWAP", "TRIG:SOUR IMM", "TRIG:COUN 1", "SAMP:COUN {count}"]
        "#,
    )
    .unwrap();
    dut.profile = impatient(
        registry
            .with_overrides(case.profile, &swap_only, "test")
            .unwrap(),
    );
    let values = dut.run("read_buffer", COUNT).await.unwrap().values;
    assert_eq!(values.len(), BUFFER_COUNT);
    assert!(
        values.iter().all(|v| v
            .measurement
            .and_then(|m| m.value())
            .is_none_or(|x| (x - standard_volts()).abs() > 1.0)),
        "{values:?}"
    );
}

/// A read step's repetitions send the operation's mode-setting `setup` once, then only the
/// trigger: on a GPIB bus every command costs an exchange and a logged event.
#[tokio::test]
async fn setup_is_sent_once_a_series_send_every_time() {
    let case = case("keysight-34470a");
    let profile = &builtin(case.profile);
    let (_server, mut session) = over_tcp(case, profile).await;
    let none = BTreeMap::new();
    let sent = |session: &mut Session| -> Vec<String> {
        session
            .take_exchanges()
            .into_iter()
            .map(|x| x.command)
            .collect()
    };
    exec::run(profile, &mut session, "read", &none, &none)
        .await
        .unwrap();
    assert_eq!(
        sent(&mut session),
        ["FORM:DATA ASC", "SAMP:COUN 1", "READ?"]
    );
    let again = exec::run_again(profile, &mut session, "read", &none, &none)
        .await
        .unwrap();
    assert_eq!(sent(&mut session), ["READ?"]);
    assert_eq!(again.values.len(), 1);
}

/// The PTU300's identity answer runs over several lines; at the sensor's real 4800 baud they
/// are still arriving after the first, and must not be taken for the answer to `SEND`.
#[tokio::test]
async fn vaisala_identity_lines_at_wire_speed_are_not_taken_for_a_reading() {
    let case = case("vaisala-ptu300");
    let profile = builtin(case.profile);
    let mut spec = SimSpec::instrument(case.personality, params());
    spec.baud = Some(4800);
    let server = PtyServer::start_spec(spec, None).unwrap();
    let resource = Resource::Serial {
        path: server.path().to_owned(),
    };
    let link = Link::open(
        &resource,
        &serial_settings(&profile),
        link_settings(&profile),
    )
    .await
    .unwrap();
    let mut session = Session::new(case.profile, link);
    let identity = exec::identify(&profile, &mut session).await.unwrap();
    assert_eq!(identity.model, "PTU300");
    assert!(!identity.serial.is_empty(), "{identity:?}");
    let none = BTreeMap::new();
    let outcome = exec::run(&profile, &mut session, "env_read", &none, &none)
        .await
        .unwrap();
    check_environment(&outcome.values, "env_read at 4800 baud");
}
