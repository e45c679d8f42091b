//! Storing a layer's blob on a second thread.
//!
//! A layer's raw bytes go three ways: into its blob file, through sha256, and on to be
//! decompressed and unpacked. In one thread the copy into the blob and the hashing add to the
//! unpacking; here the caller's thread reads the input in large chunks and hands each one, shared
//! rather than copied, to a writer thread that hashes it and appends it to the blob while the
//! caller unpacks the same bytes. A bounded pool of chunks keeps memory small and lets the
//! faster side wait for the slower one.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use sha2::{Digest as _, Sha256};

/// Bytes read from the input at a time: large reads and writes cost fewer system calls.
const CHUNK: usize = 1 << 20;
/// Chunks in the pool: enough to ride out either thread being descheduled for a while.
const CHUNKS: usize = 8;

/// A filled part of a chunk, on its way to the writer.
type Filled = (Arc<Vec<u8>>, usize);

/// What the writer stored: the blob's `sha256:<hex>` digest and size.
pub(crate) struct Stored {
    pub digest: String,
    pub size: u64,
}

/// A reader of `input` that also stores everything it reads (see the module's comment).
pub(crate) struct BlobTee<R> {
    input: R,
    chunk: Option<Filled>,
    pos: usize,
    eof: bool,
    allocated: usize,
    to_writer: Option<SyncSender<Filled>>,
    free: Receiver<Arc<Vec<u8>>>,
    writer: Option<JoinHandle<io::Result<Stored>>>,
}

impl<R: Read> BlobTee<R> {
    /// Starts the thread that writes to `blob`.
    pub fn new(input: R, mut blob: File) -> io::Result<Self> {
        let (to_writer, chunks) = sync_channel::<Filled>(CHUNKS);
        let (give_back, free) = channel();
        let writer = thread::Builder::new()
            .name("blob-writer".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                for (buf, len) in chunks {
                    blob.write_all(&buf[..len])?;
                    hasher.update(&buf[..len]);
                    size += len as u64;
                    // The reader may be gone already (it failed): then the chunk is just freed.
                    let _ = give_back.send(buf);
                }
                Ok(Stored {
                    digest: format!("sha256:{}", hex::encode(hasher.finalize())),
                    size,
                })
            })?;
        Ok(BlobTee {
            input,
            chunk: None,
            pos: 0,
            eof: false,
            allocated: 0,
            to_writer: Some(to_writer),
            free,
            writer: Some(writer),
        })
    }

    /// Reads the rest of the input, so that the blob holds all of it.
    pub fn drain(&mut self) -> io::Result<()> {
        while self.refill()? {}
        Ok(())
    }

    /// Waits for the writer and returns what it stored, or the error that stopped it (which
    /// explains any error the reading side saw since: report it first).
    pub fn finish(mut self) -> io::Result<Stored> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<Stored> {
        self.to_writer = None; // ends the writer's loop
        self.chunk = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the blob writer panicked")),
            None => Err(io::Error::other("the blob writer was already stopped")),
        }
    }

    /// A chunk no one else holds: a returned one, a new one while the pool is not full, or the
    /// next one the writer gives back.
    fn free_chunk(&mut self) -> io::Result<Vec<u8>> {
        let shared = match self.free.try_recv() {
            Ok(buf) => buf,
            Err(_) if self.allocated < CHUNKS => {
                self.allocated += 1;
                return Ok(vec![0; CHUNK]);
            }
            Err(_) => self.free.recv().map_err(|_| writer_stopped())?,
        };
        // The writer has let go, and so has this side (refill dropped its chunk first).
        Ok(Arc::try_unwrap(shared).unwrap_or_else(|_| vec![0; CHUNK]))
    }

    /// Reads the next chunk of input and sends it to the writer; false at the end of the input.
    fn refill(&mut self) -> io::Result<bool> {
        self.chunk = None;
        self.pos = 0;
        if self.eof {
            return Ok(false);
        }
        let mut buf = self.free_chunk()?;
        let mut len = 0;
        while len < buf.len() {
            match self.input.read(&mut buf[len..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if len == 0 {
            return Ok(false);
        }
        let buf = Arc::new(buf);
        let to_writer = self.to_writer.as_ref().ok_or_else(writer_stopped)?;
        to_writer
            .send((Arc::clone(&buf), len))
            .map_err(|_| writer_stopped())?;
        self.chunk = Some((buf, len));
        Ok(true)
    }
}

impl<R: Read> Read for BlobTee<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = out.len().min(buf.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The chunks are the buffer: a decoder reads them in place, with no copy in between.
impl<R: Read> BufRead for BlobTee<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.chunk.as_ref().is_none_or(|(_, len)| self.pos == *len) && !self.refill()? {
            return Ok(&[]);
        }
        let (buf, len) = self.chunk.as_ref().expect("refilled");
        Ok(&buf[self.pos..*len])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}

impl<R> Drop for BlobTee<R> {
    /// Never leaves the writer running (it may still hold the blob file open).
    fn drop(&mut self) {
        self.to_writer = None;
        self.chunk = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn writer_stopped() -> io::Error {
    io::Error::other("the blob writer stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8], read_size: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut tee = BlobTee::new(data, File::create(&path).unwrap()).unwrap();
        let mut seen = Vec::new();
        let mut buf = vec![0; read_size];
        // Read a part, then let drain store the rest.
        while seen.len() < data.len() / 2 {
            let n = tee.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        tee.drain().unwrap();
        let stored = tee.finish().unwrap();
        assert_eq!(seen, data[..seen.len()]);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(stored.size, data.len() as u64);
        assert_eq!(stored.digest, crate::digest::sha256(data));
    }

    #[test]
    fn stores_and_hashes_everything_read_or_drained() {
        let data: Vec<u8> = (0..(3 * CHUNK + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        roundtrip(&data, 512);
        roundtrip(&data, 3 * CHUNK);
        roundtrip(b"x", 1);
    }

    #[test]
    fn a_write_error_is_reported_by_finish() {
        // /dev/full fails every write with ENOSPC.
        let full = File::options().write(true).open("/dev/full").unwrap();
        let data = vec![1u8; 2 * CHUNK];
        let mut tee = BlobTee::new(&data[..], full).unwrap();
        let _ = tee.drain();
        let err = tee.finish().err().expect("an error");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    }
}
