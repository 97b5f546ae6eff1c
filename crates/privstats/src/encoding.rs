//! Canonical binary encoding: big-endian integers, length-prefixed sequences, compressed
//! Ristretto points (32 bytes) and canonical scalars (32 bytes). Decoding rejects trailing bytes,
//! non-canonical scalars and points that do not decompress, so every value has exactly one
//! encoding and hashes of encodings are identifiers.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;

use crate::error::{Error, Result};

/// Upper bound on any decoded sequence length (a limit on everything).
pub const SEQ_LEN_MAX: usize = 1 << 20;

/// Appends canonical bytes.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn seq_len(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).expect("sequence length fits u32"))
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.seq_len(b.len());
        self.buf.extend_from_slice(b);
        self
    }
    pub fn fixed(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    pub fn point(&mut self, p: &RistrettoPoint) -> &mut Self {
        self.fixed(p.compress().as_bytes())
    }
    pub fn scalar(&mut self, s: &Scalar) -> &mut Self {
        self.fixed(s.as_bytes())
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::Decode("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn seq_len(&mut self) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > SEQ_LEN_MAX {
            return Err(Error::Decode("sequence too long"));
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.seq_len()?;
        self.take(n)
    }
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    pub fn point(&mut self) -> Result<RistrettoPoint> {
        CompressedRistretto(self.fixed::<32>()?)
            .decompress()
            .ok_or(Error::Decode("point does not decompress"))
    }
    pub fn scalar(&mut self) -> Result<Scalar> {
        Option::from(Scalar::from_canonical_bytes(self.fixed::<32>()?))
            .ok_or(Error::Decode("non-canonical scalar"))
    }
    /// Fails unless every byte was consumed.
    pub fn end(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::Decode("trailing bytes"))
        }
    }
}

/// Types with one canonical byte encoding.
pub trait Canonical: Sized {
    fn write(&self, w: &mut Writer);
    fn read(r: &mut Reader<'_>) -> Result<Self>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.end()?;
        Ok(v)
    }
}

/// SHA-256 of a domain tag and a canonical encoding.
pub fn digest(domain: &[u8], bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((domain.len() as u32).to_be_bytes());
    h.update(domain);
    h.update(bytes);
    h.finalize().into()
}
