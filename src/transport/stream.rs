//! The byte streams under a link: serial ports (and pseudo-terminals) and TCP sockets, opened with
//! the settings that make their replies framable.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{LinkSettings, SerialSettings};

/// What a link reads from and writes to: a serial port or a TCP socket.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A serial port whose flush does not block.
///
/// `tokio_serial` flushes with `tcdrain`, a blocking call that would stall an executor thread
/// until the UART has sent everything, and forever if flow control holds the line. The kernel
/// sends queued bytes anyway, and the reply deadline covers transmission time, so flushing is
/// not needed for correctness.
struct SerialPort(tokio_serial::SerialStream);

impl AsyncRead for SerialPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SerialPort {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Opens a serial port (or pseudo-terminal) with the given line settings.
pub(super) fn open_serial(path: &Path, serial: &SerialSettings) -> io::Result<Box<dyn Stream>> {
    let path = path
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "device path is not UTF-8"))?;
    let builder = tokio_serial::new(path, serial.baud)
        .data_bits(serial.data_bits.into())
        .parity(serial.parity.into())
        .stop_bits(serial.stop_bits.into())
        .flow_control(serial.flow_control.into());
    let port = tokio_serial::SerialStream::open(&builder).map_err(io::Error::from)?;
    Ok(Box::new(SerialPort(port)))
}

/// Connects to a TCP port within `timeout`, with `TCP_NODELAY` so short commands leave at once.
pub(super) async fn open_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> io::Result<Box<dyn Stream>> {
    let connect = TcpStream::connect((host, port));
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

/// Rejects settings under which no reply could ever be framed.
pub(crate) fn check_settings(settings: &LinkSettings) -> Result<(), io::Error> {
    if settings.read_termination.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "read termination is empty",
        ));
    }
    Ok(())
}
