"""Drive public instrument drivers (QCoDeS, PyMeasure, hp3458a, plain PyVISA) against tsagent's simulated
instruments: construct each, set and read back NPLC and range, take readings, read the error
queue, close. Run by tests/drivers/run.sh, which starts the simulators and passes their ports.

Every message a driver writes and every line it reads goes through PyVISA's message-based
resource, so both are recorded; a failing case prints its last exchanges.

Each case gets a simulator of its own (`tsagent sim --tcp 127.0.0.1:0 …`), so one driver's
settings, errors or unclosed connection cannot decide another's result. While it runs, another
client holds a connection to the same simulator, half a message sent and then idle, as a driver
that crashed inside a process that lives on (a notebook kernel) would: it must block nobody.

Usage: drive.py --tsagent PATH
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import math
import socket
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass
from typing import Callable

import pyvisa
from pyvisa.resources import MessageBasedResource

TIMEOUT_MS = 2000
TERM = "\n"

# The last exchanges of the case that runs, newest last.
EXCHANGE: collections.deque[str] = collections.deque(maxlen=16)

_write = MessageBasedResource.write
_read = MessageBasedResource.read


def _recording_write(self, message, *args, **kwargs):
    EXCHANGE.append(f"> {message!r}")
    return _write(self, message, *args, **kwargs)


def _recording_read(self, *args, **kwargs):
    try:
        reply = _read(self, *args, **kwargs)
    except Exception as e:
        EXCHANGE.append(f"< ({type(e).__name__}: {e})")
        raise
    EXCHANGE.append(f"< {reply!r}")
    return reply


MessageBasedResource.write = _recording_write
MessageBasedResource.read = _recording_read


def _allow_termchar_on_prologix() -> None:
    """PyVISA-py 0.8.1's Prologix GPIB session refuses VI_ATTR_TERMCHAR(_EN), so every driver
    that sets a read termination (all of them) fails to open before a byte is sent. The adapter
    ends each read at EOI (`++read eoi`) whatever the termination, so holding the two attributes
    in the session, as its other sessions do, changes nothing on the wire; PyVISA itself then
    strips the terminator from what was read."""
    from pyvisa import constants
    from pyvisa_py.prologix import PrologixInstrSession

    held = (constants.ResourceAttribute.termchar, constants.ResourceAttribute.termchar_enabled)
    original_set = PrologixInstrSession._set_attribute
    original_get = PrologixInstrSession._get_attribute

    def set_attribute(self, attribute, state):
        if attribute in held:
            self.__dict__.setdefault("_held", {})[attribute] = state
            return constants.StatusCode.success
        return original_set(self, attribute, state)

    def get_attribute(self, attribute):
        if attribute in held and attribute in self.__dict__.get("_held", {}):
            return self._held[attribute], constants.StatusCode.success
        return original_get(self, attribute)

    PrologixInstrSession._set_attribute = set_attribute
    PrologixInstrSession._get_attribute = get_attribute


_allow_termchar_on_prologix()


class Mismatch(AssertionError):
    """A driver got an answer that is not what the instrument sends."""


def expect(what: str, got, want) -> None:
    ok = (
        math.isclose(got, want, rel_tol=1e-9)
        if isinstance(want, float) and isinstance(got, (int, float))
        else got == want
    )
    if not ok:
        raise Mismatch(f"{what}: got {got!r}, want {want!r}")


def expect_reading(what: str, value, volts: float = 10.0) -> None:
    v = float(value)
    if not abs(v - volts) < 0.01 * volts:
        raise Mismatch(f"{what}: reading {v!r} is not about {volts} V")


@dataclass
class Case:
    """One driver against one personality over one transport."""

    driver: str
    personality: str
    transport: str
    run: Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# QCoDeS


def qcodes_truevolt(cls_name: str) -> Callable[[str], None]:
    def run(resource: str) -> None:
        from qcodes.instrument_drivers import Keysight

        cls = getattr(Keysight, cls_name)
        dmm = cls(
            f"dmm_{cls_name}",
            resource,
            visalib="@py",
            terminator=TERM,
            timeout=TIMEOUT_MS / 1000,
        )
        try:
            model = cls_name.removeprefix("Keysight")
            expect("IDN model", dmm.IDN()["model"], model)
            expect("error queue after init", dmm.error(), (0, "No error"))
            expect("line frequency", dmm.line_frequency(), 50)
            dmm.sense_function("DC Voltage")
            expect("sense function", dmm.sense_function(), "DC Voltage")
            dmm.NPLC(1)
            expect("NPLC", dmm.NPLC(), 1.0)
            dmm.range(10)
            expect("range", dmm.range(), 10.0)
            expect("autorange", dmm.autorange(), "OFF")
            dmm.autorange("ON")
            expect("autorange", dmm.autorange(), "ON")
            dmm.range(10)
            dmm.autozero("OFF")
            expect("autozero", dmm.autozero(), "OFF")
            dmm.autozero("ON")
            expect("autozero", dmm.autozero(), "ON")
            dmm.resolution()
            dmm.aperture_time(0.1)
            expect("aperture mode", dmm.aperture_mode(), "ON")
            expect("aperture time", dmm.aperture_time(), 0.1)
            dmm.NPLC(10)
            expect("aperture mode after NPLC", dmm.aperture_mode(), "OFF")
            dmm.trigger.source("BUS")
            expect("trigger source", dmm.trigger.source(), "BUS")
            dmm.trigger.source("IMM")
            dmm.trigger.count(2)
            expect("trigger count", dmm.trigger.count(), 2)
            dmm.trigger.delay(0.01)
            expect("trigger delay", dmm.trigger.delay(), 0.01)
            dmm.trigger.auto_delay_enabled(True)
            expect("trigger auto delay", dmm.trigger.auto_delay_enabled(), True)
            dmm.sample.count(3)
            expect("sample count", dmm.sample.count(), 3)
            readings = dmm.read()
            expect("readings in READ?", len(readings), 6)
            for r in readings:
                expect_reading("READ?", r)
            expect("readings in FETCh?", len(dmm.fetch()), 6)
            dmm.trigger.count(1)
            dmm.sample.count(1)
            expect_reading("volt", dmm.volt())
            # The driver's other readings switch function, read and switch back to dc volts.
            # With the 10 V standard on the voltage terminals the simulator's ohms functions
            # overload (the driver sends that as infinity) and the ac and current functions
            # read the meter's noise, near zero.
            expect("2-wire resistance", dmm.res(), math.inf)
            expect("4-wire resistance", dmm.four_wire_res(), math.inf)
            expect("ac volts near zero", 0.0 <= dmm.ac_volt() < 1e-3, True)
            expect("dc current near zero", abs(dmm.curr()) < 1e-6, True)
            expect("ac current near zero", 0.0 <= dmm.ac_curr() < 1e-6, True)
            expect("function after readings", dmm.sense_function(), "DC Voltage")
            # Settings follow the function in use and each function keeps its own.
            dmm.sense_function("2 Wire Resistance")
            expect("sense function", dmm.sense_function(), "2 Wire Resistance")
            dmm.NPLC(1)
            expect("resistance NPLC", dmm.NPLC(), 1.0)
            dmm.autozero("OFF")
            expect("resistance autozero", dmm.autozero(), "OFF")
            dmm.sense_function("DC Current")
            dmm.aperture_time(0.01)
            expect("dc current aperture", dmm.aperture_time(), 0.01)
            dmm.sense_function("DC Voltage")
            expect("dc volts NPLC kept", dmm.NPLC(), 10.0)
            expect("dc volts autozero kept", dmm.autozero(), "ON")
            expect("dc volts aperture mode kept", dmm.aperture_mode(), "OFF")
            # The ac functions have no integration time: the header is undefined, as on the
            # real meter.
            dmm.sense_function("AC Voltage")
            dmm.write("SENSe:VOLTage:AC:NPLC 1")
            expect("ac NPLC", dmm.error(), (-113, "Undefined header"))
            dmm.sense_function("DC Voltage")
            expect_reading("volt after switching", dmm.volt())
            dmm.display.text("tsagent")
            expect("display text", dmm.display.text(), "tsagent")
            dmm.display.clear()
            expect("display text after clear", dmm.display.text(), "")
            expect("error queue", dmm.error(), (0, "No error"))
            # An undefined header: the real meter queues -113 and sends nothing.
            dmm.write("BOGus:HEADer")
            expect("undefined header", dmm.error(), (-113, "Undefined header"))
            expect("error queue", dmm.error(), (0, "No error"))
        finally:
            dmm.close()

    return run


def qcodes_keithley_basics(dmm, model: str, range_for_10v: float) -> None:
    """What QCoDeS's Keithley drivers share: the identity, DC volts, NPLC, and the range a
    10 V setting gives on this model."""
    expect("IDN model", dmm.IDN()["model"], model)
    dmm.mode("dc voltage")
    expect("mode", dmm.mode(), "dc voltage")
    dmm.nplc(1)
    expect("nplc", dmm.nplc(), 1.0)
    dmm.range(10)
    expect("range", dmm.range(), range_for_10v)


def qcodes_dmm6500(resource: str) -> None:
    from qcodes.instrument_drivers.Keithley import Keithley6500

    dmm = Keithley6500(
        "dmm6500", resource, visalib="@py", terminator=TERM, timeout=TIMEOUT_MS / 1000
    )
    try:
        qcodes_keithley_basics(dmm, "DMM6500", 10.0)
        # QCoDeS 0.58 parses this flag with bool() of the reply text, so the meter's `0` reads
        # as True: a driver bug (any real DMM6500 sends `0` too). The reply is checked instead.
        expect("auto range reply", dmm.ask("SENS:VOLT:DC:RANG:AUTO?"), "0")
        dmm.auto_range_enabled(True)
        expect("auto range", dmm.auto_range_enabled(), True)
        expect_reading("amplitude", dmm.amplitude())
        # QCoDeS 0.58 sets digits with `DISP:VOLT:DC:DIG? n`, a query (a driver bug), so only
        # the reading side is driven.
        expect("digits", dmm.digits(), 6)
        dmm.display_backlight("On 50")
        expect("display backlight", dmm.display_backlight(), "On 50")
        expect("error queue", dmm.ask("SYST:ERR?"), '0,"No error"')
        dmm.write("BOGus:HEADer")
        expect("error count", dmm.ask("SYST:ERR:COUN?"), "1")
        code = dmm.ask("SYST:ERR?").split(",")[0]
        expect("undefined header", code, "-113")
    finally:
        dmm.close()


# ---------------------------------------------------------------------------------------------
# PyMeasure


def pymeasure_adapter(resource: str):
    from pymeasure.adapters import VISAAdapter

    return VISAAdapter(
        resource,
        visa_library="@py",
        read_termination=TERM,
        write_termination=TERM,
        timeout=TIMEOUT_MS,
    )


def pymeasure_errors(dmm) -> None:
    expect("error queue", dmm.check_errors(), [])
    dmm.write("BOGus:HEADer")
    errors = dmm.check_errors()
    expect("undefined header", [int(e[0]) for e in errors], [-113])


def pymeasure_dmm6500(resource: str) -> None:
    from pymeasure.instruments.keithley import KeithleyDMM6500

    dmm = KeithleyDMM6500(pymeasure_adapter(resource))
    try:
        expect("command set", dmm.command_set, "SCPI")
        expect("line frequency", dmm.line_frequency, 50)
        dmm.measure_voltage(max_voltage=10)
        expect("mode", dmm.mode, "voltage")
        dmm.voltage_nplc = 1
        expect("voltage nplc", dmm.voltage_nplc, 1.0)
        dmm.voltage_range = 10
        expect("voltage range", dmm.voltage_range, 10.0)
        expect_reading("voltage", dmm.voltage)
        dmm.autozero_enabled = False
        expect("autozero", dmm.autozero_enabled, False)
        dmm.autozero_enabled = True
        dmm.displayed_text("tsagent", "simulated DMM6500")
        dmm.clear()
        dmm.write(':TRAC:CLE')
        dmm.write('TRIG:LOAD "SimpleLoop",3')
        dmm.write(":INIT;*WAI")
        expect("readings in defbuffer1", int(dmm.ask(":TRAC:ACT?")), 3)
        pymeasure_errors(dmm)
    finally:
        dmm.close()


def pymeasure_34401a(resource: str) -> None:
    from pymeasure.instruments.hp import HP34401A

    dmm = HP34401A(pymeasure_adapter(resource))
    try:
        dmm.function_ = "DCV"
        expect("function", dmm.function_, "DCV")
        dmm.nplc = 1
        expect("nplc", dmm.nplc, 1.0)
        dmm.range_ = 10
        expect("range", dmm.range_, 10.0)
        dmm.autorange = True
        expect("autorange", dmm.autorange, True)
        # `ZERO:AUTO` is the 34401A's; the Truevolt manual has only `[SENSe:]VOLTage:ZERO:AUTO`,
        # so the meter queues -113 and sends nothing, and the driver's property cannot be read.
        dmm.write("ZERO:AUTO ON")
        expect("34401A-only ZERO:AUTO", dmm.next_error[0], -113)
        dmm.trigger_source = "BUS"
        expect("trigger source", dmm.trigger_source, "BUS")
        dmm.trigger_source = "IMM"
        dmm.trigger_delay = 0.01
        expect("trigger delay", dmm.trigger_delay, 0.01)
        dmm.sample_count = 2
        expect("sample count", dmm.sample_count, 2)
        dmm.trigger_count = 1
        expect("trigger count", dmm.trigger_count, 1)
        for r in dmm.reading:
            expect_reading("reading", r)
        dmm.sample_count = 1
        expect_reading("reading", dmm.reading)
        expect_reading("stored reading", dmm.stored_reading)
        dmm.displayed_text = "tsagent"
        expect("display text", dmm.displayed_text, "tsagent")
        pymeasure_errors(dmm)
    finally:
        dmm.adapter.close()


def pymeasure_34410a(resource: str) -> None:
    from pymeasure.instruments.agilent import Agilent34410A

    dmm = Agilent34410A(pymeasure_adapter(resource))
    try:
        # The class has no settings of its own: NPLC and range through its SCPI methods.
        dmm.write("VOLT:NPLC 1")
        expect("nplc", float(dmm.ask("VOLT:NPLC?")), 1.0)
        dmm.write("VOLT:RANG 10")
        expect("range", float(dmm.ask("VOLT:RANG?")), 10.0)
        expect_reading("voltage_dc", dmm.voltage_dc)
        pymeasure_errors(dmm)
    finally:
        dmm.adapter.close()


def qcodes_2000_on_2002(resource: str) -> None:
    """QCoDeS's Keithley 2000 driver on a 2002, whose SCPI set is the 2000's and more; the 2002's
    ranges are 200 mV to 1000 V by decades of 2, so asking for 10 V gives the 20 V range."""
    from qcodes.instrument_drivers.Keithley import Keithley2000

    dmm = Keithley2000("k2002", resource, visalib="@py", terminator=TERM, timeout=TIMEOUT_MS / 1000)
    try:
        qcodes_keithley_basics(dmm, "2002", 20.0)
        dmm.auto_range_enabled(True)
        expect("auto range", dmm.auto_range_enabled(), True)
        dmm.trigger_count(1)
        expect("trigger count", dmm.trigger_count(), 1)
        dmm.trigger()
        expect_reading("amplitude", dmm.amplitude())
        expect("error queue", dmm.ask(":SYST:ERR?"), '0,"No error"')
        dmm.write("BOGus:HEADer")
        expect("undefined header", dmm.ask(":SYST:ERR?").split(",")[0], "-113")
    finally:
        dmm.close()


def pymeasure_2000_on_2002(resource: str) -> None:
    """PyMeasure's Keithley 2000 class on a 2002 (see `qcodes_2000_on_2002`)."""
    from pymeasure.instruments.keithley import Keithley2000

    dmm = Keithley2000(pymeasure_adapter(resource))
    try:
        dmm.measure_voltage(max_voltage=10)
        expect("mode", dmm.mode, "voltage")
        dmm.voltage_nplc = 1
        expect("voltage nplc", dmm.voltage_nplc, 1.0)
        expect("voltage range", dmm.voltage_range, 20.0)
        dmm.write(":FORM:ELEM READ")
        expect_reading("voltage", dmm.voltage)
        pymeasure_errors(dmm)
    finally:
        dmm.adapter.close()


# ---------------------------------------------------------------------------------------------
# hp3458a (PyPI): a thin PyVISA wrapper for the 3458A


def hp3458a_package(resource: str) -> None:
    """The `hp3458a` package's HP3458A class. It prints and swallows every exception (a failed
    query returns None, a failed write False) and opens its own default ResourceManager, so
    every return value is checked here: a failure cannot pass as a missing value."""
    from hp3458a.main import HP3458A

    dmm = HP3458A(resource, delay=0, timeout=TIMEOUT_MS)
    expect("connected", dmm._HP3458A__instrument_connected, True)
    try:
        # END ON: EOI after the last reading of a group (and after each single one), so a
        # multi-reading RMEM is one GPIB read behind the Prologix.
        expect("END ON", dmm.set_end_of_identify("ON"), True)
        expect("END?", dmm.get_end_of_identify(), "1")
        expect("ID?", dmm.get_id(), "HP3458A")
        expect("error register", dmm.get_error(), "0")
        expect("DCV 10", dmm.set_voltage_dc_rang_res(10, 1e-6), True)
        expect("NPLC 1", dmm.set_nplc(1), True)
        expect("NPLC?", float(dmm.get_nplc()), 1.0)
        expect("RANGE 0.5", dmm.set_range(0.5), True)
        expect("RANGE? after 0.5", float(dmm.get_range()), 1.0)
        expect("RANGE 10", dmm.set_range(10), True)
        expect("RANGE?", float(dmm.get_range()), 10.0)
        expect("NDIG 8", dmm.set_number_of_digits(8), True)
        expect("NDIG?", dmm.get_number_of_digits(), "8")
        # The package's one read path, as its README shows: readings into memory, recalled.
        expect("TARM HOLD", dmm.set_trigger_arm("HOLD"), True)
        expect("TARM?", dmm.get_trigger_arm(), "4")
        expect("TRIG AUTO", dmm.set_trigger_event("AUTO"), True)
        expect("TRIG?", dmm.get_trigger_event(), "1")
        expect("NRDGS 3", dmm.set_number_of_reading_per_trigger(3, "AUTO"), True)
        expect("MEM FIFO", dmm.set_memory_storage_mode("FIFO"), True)
        expect("MEM?", dmm.get_memory_storage_mode(), "2")
        expect("TARM SGL,1", dmm.set_trigger_arm("SGL", 1), True)
        expect("MCOUNT?", dmm.get_number_of_stored_readings(), "3")
        recalled = dmm.read_memory(1, 3, 1)
        expect("RMEM 1,3,1 returned", recalled is not None, True)
        values = recalled.strip().split(",")
        expect("readings recalled", len(values), 3)
        for v in values:
            expect_reading("RMEM", v)
        expect("MEM? after RMEM", dmm.get_memory_storage_mode(), "0")
        expect_reading("RMEM 1,1,1", dmm.read_memory(1, 1, 1))
        expect("error register", dmm.get_error(), "0")
        # The package passes an arm event through unchecked: an unknown one sets the error
        # register's undefined-parameter bit (32) and changes nothing.
        expect("TARM BOGUS", dmm.set_trigger_arm("BOGUS"), True)
        expect("error register after TARM BOGUS", dmm.get_error(), "32")
        expect("error register cleared", dmm.get_error(), "0")
        expect("TARM? unchanged", dmm.get_trigger_arm(), "4")
    finally:
        dmm.close_connection()


# ---------------------------------------------------------------------------------------------
# Plain PyVISA, for models no framework has a driver for


def pyvisa_3458a(resource: str) -> None:
    rm = pyvisa.ResourceManager("@py")
    dmm = rm.open_resource(resource, read_termination="\r\n", write_termination=TERM)
    dmm.timeout = TIMEOUT_MS
    try:
        dmm.clear()
        dmm.write("END ALWAYS")
        expect("ID?", dmm.query("ID?"), "HP3458A")
        dmm.write("NPLC 1")
        expect("NPLC?", float(dmm.query("NPLC?")), 1.0)
        dmm.write("DCV 10")
        expect("RANGE?", float(dmm.query("RANGE?")), 10.0)
        dmm.write("TARM HOLD")
        dmm.write("TARM SGL")
        expect_reading("reading", dmm.read())
        expect("ERR?", dmm.query("ERR?"), "0")
        dmm.write("BOGUS")
        expect("ERRSTR? after a bad header", dmm.query("ERRSTR?").split(",")[0], "104")
    finally:
        dmm.close()


# ---------------------------------------------------------------------------------------------


# The personalities each driver is run against.
BY_PERSONALITY = {
    "keysight-34465a": [
        ("QCoDeS Keysight34465A", qcodes_truevolt("Keysight34465A")),
        ("PyMeasure HP34401A", pymeasure_34401a),
        ("PyMeasure Agilent34410A", pymeasure_34410a),
    ],
    "keysight-34470a": [
        ("QCoDeS Keysight34470A", qcodes_truevolt("Keysight34470A")),
        ("PyMeasure HP34401A", pymeasure_34401a),
        ("PyMeasure Agilent34410A", pymeasure_34410a),
    ],
    "keithley-dmm6500": [
        ("QCoDeS Keithley6500", qcodes_dmm6500),
        ("PyMeasure KeithleyDMM6500", pymeasure_dmm6500),
    ],
    "keithley-2002": [
        ("QCoDeS Keithley2000", qcodes_2000_on_2002),
        ("PyMeasure Keithley2000", pymeasure_2000_on_2002),
    ],
    "keysight-3458a": [
        ("hp3458a HP3458A", hp3458a_package),
        ("PyVISA", pyvisa_3458a),
    ],
}

# The GPIB address each personality gets behind the simulated Prologix adapter.
GPIB_ADDRESS = {
    "keysight-34465a": 10,
    "keysight-34470a": 11,
    "keithley-dmm6500": 16,
    "keithley-2002": 17,
    "keysight-3458a": 22,
}


def cases():
    """Every (driver, personality, transport) case, with the simulator arguments it needs."""
    for personality, drivers in BY_PERSONALITY.items():
        for driver, run in drivers:
            yield Case(driver, personality, "tcp", run), ["--personality", personality]
            addr = GPIB_ADDRESS[personality]
            yield (
                Case(driver, personality, f"prologix gpib {addr}", run),
                ["--prologix", f"{addr}={personality}"],
            )


class Simulator:
    """`tsagent sim --tcp 127.0.0.1:0 ARGS`, stopped on exit."""

    def __init__(self, tsagent: str, args: list[str]):
        self.proc = subprocess.Popen(
            [tsagent, "sim", "--tcp", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("tcp 127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"tsagent sim {' '.join(args)} did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()


@contextlib.contextmanager
def idle_client(port: int):
    """A client connected to the simulator with half a message sent, idle until the case ends:
    the fragment has no terminator, so it reaches no instrument, and it changes no setting."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_MS / 1000) as s:
        s.sendall(b"*ID")
        yield


def close_everything(rm: pyvisa.ResourceManager) -> None:
    """Closes what a failed driver left open (QCoDeS keeps instruments it could not finish
    constructing registered, and their sockets open)."""
    try:
        from qcodes.instrument import Instrument

        Instrument.close_all()
    except Exception:
        pass
    gc.collect()
    for r in list(rm.list_opened_resources()):
        try:
            r.close()
        except Exception:
            pass


def versions() -> str:
    from importlib.metadata import version

    names = ["qcodes", "pymeasure", "hp3458a", "pyvisa", "pyvisa-py"]
    return ", ".join(f"{n} {version(n)}" for n in names)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsagent", required=True, help="the tsagent binary")
    ap.add_argument("filter", nargs="?", default="", help="run only cases whose label has this")
    args = ap.parse_args()

    warnings.simplefilter("ignore")
    print(f"drivers: {versions()}")
    rm = pyvisa.ResourceManager("@py")
    failed = 0
    total = 0
    for case, sim_args in cases():
        label = f"{case.driver} | {case.personality} | {case.transport}"
        if args.filter not in label:
            continue
        total += 1
        EXCHANGE.clear()
        try:
            with Simulator(args.tsagent, sim_args) as sim, idle_client(sim.port):
                try:
                    if case.transport == "tcp":
                        case.run(f"TCPIP0::127.0.0.1::{sim.port}::SOCKET")
                    else:
                        intfc = rm.open_resource(f"PRLGX-TCPIP0::127.0.0.1::{sim.port}::INTFC")
                        addr = GPIB_ADDRESS[case.personality]
                        case.run(f"GPIB0::{addr}::INSTR")
                        intfc.close()
                finally:
                    close_everything(rm)
        except Exception as e:
            failed += 1
            print(f"FAIL {label}")
            print(f"  {type(e).__name__}: {e}")
            if not isinstance(e, Mismatch):
                tb = traceback.extract_tb(e.__traceback__)
                here = [f for f in tb if f.filename == __file__]
                if here:
                    print(f"  at drive.py line {here[-1].lineno}: {here[-1].line}")
            print("  last exchanges:")
            for line in EXCHANGE:
                print(f"    {line}")
        else:
            print(f"ok   {label}")
    print(f"{total - failed} of {total} driver cases pass")
    return 1 if failed or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
