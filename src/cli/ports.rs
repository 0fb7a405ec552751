//! `tsagent ports`: the serial ports this machine has, with the stable names to put in a config.

use std::path::{Path, PathBuf};

use serialport::SerialPortType;

/// Lists serial ports: device, stable `/dev/serial/by-id` name when there is one, USB identity.
pub fn run() {
    // The kernel lists every possible 8250 port; only USB and PCI ones are worth showing.
    let ports = match serialport::available_ports() {
        Ok(ports) => ports,
        Err(e) => {
            say!("cannot list serial ports: {e}");
            return;
        }
    };
    let by_id = stable_names(Path::new("/dev/serial/by-id"));
    let mut shown = 0;
    for port in ports {
        let stable = by_id
            .iter()
            .find(|(_, target)| target.as_os_str() == port.port_name.as_str())
            .map(|(link, _)| link.display().to_string());
        let describe = match &port.port_type {
            SerialPortType::UsbPort(usb) => format!(
                "USB {:04x}:{:04x} {} {} serial {}",
                usb.vid,
                usb.pid,
                usb.manufacturer.as_deref().unwrap_or("?"),
                usb.product.as_deref().unwrap_or("?"),
                usb.serial_number.as_deref().unwrap_or("?")
            ),
            SerialPortType::PciPort => "PCI".to_owned(),
            SerialPortType::BluetoothPort => "Bluetooth".to_owned(),
            SerialPortType::Unknown => continue,
        };
        let resource = stable.as_deref().unwrap_or(&port.port_name);
        say!("ASRL{resource}::INSTR  ({}; {describe})", port.port_name);
        shown += 1;
    }
    if shown == 0 {
        say!("no USB or PCI serial ports found");
    }
}

/// `(link, resolved target)` for each symlink in `dir`.
fn stable_names(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::canonicalize(e.path()).ok().map(|t| (e.path(), t)))
        .collect()
}
