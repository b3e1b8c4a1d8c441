//! Closing a packet socket waits for an RCU grace period (the kernel's packet_release
//! calls synchronize_net): 10-20 ms that stopping a network must not spend on the
//! runtime's thread. [`BgClose`] hands the descriptor to one background thread instead.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};

/// A descriptor closed on a background thread when dropped.
pub struct BgClose(Option<OwnedFd>);

impl BgClose {
    pub fn new(fd: OwnedFd) -> BgClose {
        BgClose(Some(fd))
    }
}

impl AsFd for BgClose {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_ref().expect("only taken by drop").as_fd()
    }
}

impl AsRawFd for BgClose {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

fn closer() -> Option<&'static Sender<OwnedFd>> {
    static CLOSER: OnceLock<Option<Sender<OwnedFd>>> = OnceLock::new();
    CLOSER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<OwnedFd>();
            std::thread::Builder::new()
                .name("kvnet-closer".into())
                .spawn(move || rx.into_iter().for_each(drop))
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

impl Drop for BgClose {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            // Without the thread (or after it ended) the close happens here.
            if let Some(tx) = closer() {
                let _ = tx.send(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_in_the_background() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = BgClose::new(OwnedFd::from(a));
        assert!(fd.as_raw_fd() >= 0);
        drop(fd);
        // The peer sees end of file once the background thread has closed `a`.
        b.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &b, &mut buf).unwrap(), 0);
    }
}
