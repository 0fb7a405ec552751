//! TEMPORARY STUB (types only) until the transport branch lands.
#![allow(missing_docs, dead_code)]
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource { Serial { path: PathBuf }, Tcp { host: String, port: u16 } }
impl std::str::FromStr for Resource {
    type Err = ResourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("ASRL") { if let Some(p) = rest.strip_suffix("::INSTR") { return Ok(Resource::Serial { path: p.into() }); } }
        Err(ResourceError { resource: s.into() })
    }
}
impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self { Resource::Serial { path } => write!(f, "ASRL{}::INSTR", path.display()), Resource::Tcp { host, port } => write!(f, "TCPIP::{host}::{port}::SOCKET") }
    }
}
#[derive(Debug, thiserror::Error)]
#[error("bad resource `{resource}`")]
pub struct ResourceError { pub resource: String }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum DataBits { Seven, Eight }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum Parity { None, Even, Odd }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum StopBits { One, Two }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub enum FlowControl { None, XonXoff, RtsCts }
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings { pub baud: u32, pub data_bits: DataBits, pub parity: Parity, pub stop_bits: StopBits, pub flow_control: FlowControl }
impl Default for SerialSettings { fn default() -> Self { Self { baud: 9600, data_bits: DataBits::Eight, parity: Parity::None, stop_bits: StopBits::One, flow_control: FlowControl::None } } }
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings { pub write_termination: Vec<u8>, pub read_termination: Vec<u8>, pub timeout: Duration, pub max_reply: usize }
impl Default for LinkSettings { fn default() -> Self { Self { write_termination: b"\n".to_vec(), read_termination: b"\n".to_vec(), timeout: Duration::from_secs(5), max_reply: 1 << 20 } } }
