//! Passing file descriptors between processes over a Unix socket (`SCM_RIGHTS`): the plugin
//! host hands the sealed shared-segment memfds it created to the parent this way.

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// File descriptors per message (the kernel allows 253).
const PER_MESSAGE: usize = 200;

/// Sends `fds` over `socket`, in messages of at most [`PER_MESSAGE`] descriptors.
pub fn send_fds(socket: BorrowedFd<'_>, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    for chunk in fds.chunks(PER_MESSAGE) {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PER_MESSAGE))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(chunk)) {
            return Err(std::io::Error::other("ancillary buffer too small"));
        }
        let byte = [chunk.len() as u8];
        rustix::net::sendmsg(
            socket,
            &[IoSlice::new(&byte)],
            &mut control,
            SendFlags::empty(),
        )?;
    }
    Ok(())
}

/// Receives the descriptors of one message sent by [`send_fds`] (empty at end of stream). They
/// arrive without close-on-exec, so workers started later inherit them.
pub fn recv_fds(socket: BorrowedFd<'_>) -> std::io::Result<Vec<OwnedFd>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::empty(),
    )?;
    let mut out = Vec::new();
    if got.bytes == 0 {
        return Ok(out);
    }
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            out.extend(fds);
        }
    }
    Ok(out)
}

/// Takes ownership of the socket whose descriptor number the parent passed in the environment.
#[allow(unsafe_code)]
pub fn adopt(fd: i32) -> UnixStream {
    // SAFETY: the parent created this socket, cleared close-on-exec on exactly this descriptor
    // and told us its number; nothing else in this process owns or closes it.
    UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_cross_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut files: Vec<std::fs::File> =
            (0..205).map(|_| tempfile::tempfile().unwrap()).collect();
        files[204].write_all(b"last").unwrap();
        let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
        send_fds(a.as_fd(), &fds).unwrap();
        let mut got = recv_fds(b.as_fd()).unwrap();
        assert_eq!(got.len(), PER_MESSAGE);
        got.extend(recv_fds(b.as_fd()).unwrap());
        assert_eq!(got.len(), 205);
        let mut f = std::fs::File::from(got.pop().unwrap());
        f.rewind().unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "last");
        drop(a);
        assert!(recv_fds(b.as_fd()).unwrap().is_empty());
    }
}
