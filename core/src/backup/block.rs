//! One block's encoding: its name (hash), compression and encryption.
//!
//! A stored block is
//!
//! ```text
//! "KLB1"  flags:u8  [nonce: 24 bytes if encrypted]  payload
//! ```
//!
//! where the payload is a zstd frame of the block's bytes, and, when flag
//! bit 0 is set, that frame sealed with XChaCha20-Poly1305 under a random
//! nonce, with the block's hash as associated data (a sealed block only
//! opens under its own name). The name is BLAKE3 of the plain bytes, keyed
//! when encrypted so that names say nothing about content.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"KLB1";
const FLAG_ENCRYPTED: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 1;

/// The 32-byte master key backups are encrypted with.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

impl EncryptionKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// Reads a key file: 64 hex digits (surrounding whitespace ignored) or
    /// exactly 32 raw bytes.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            operation: "read encryption key",
            path: path.display().to_string(),
            source,
        })?;
        let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
        let mut key = [0u8; 32];
        if text.len() == 64 && hex::decode_to_slice(text, &mut key).is_ok() {
            return Ok(Self(key));
        }
        if bytes.len() == 32 {
            key.copy_from_slice(&bytes);
            return Ok(Self(key));
        }
        Err(Error::Config {
            key: "backup.encryption_key_file".into(),
            reason: format!(
                "{}: must hold 64 hex digits or 32 raw bytes",
                path.display()
            ),
        })
    }
}

/// Names, encodes and decodes blocks; one per engine.
pub struct BlockCodec {
    level: i32,
    max_block: usize,
    sealing: Option<Sealing>,
}

struct Sealing {
    hash_key: [u8; 32],
    aead: XChaCha20Poly1305,
    key_id: String,
}

/// A block ready to upload.
pub struct EncodedBlock {
    /// Its name: the hex hash of the plain bytes.
    pub hash: String,
    /// What is stored.
    pub data: bytes::Bytes,
}

impl BlockCodec {
    /// A codec compressing at `level`, for blocks of at most `max_block`
    /// bytes, encrypting when `key` is given.
    pub fn new(level: i32, max_block: usize, key: Option<&EncryptionKey>) -> Self {
        let sealing = key.map(|k| {
            let aead_key = blake3::derive_key("kiln backup 2024 block encryption", &k.0);
            Sealing {
                hash_key: blake3::derive_key("kiln backup 2024 block naming", &k.0),
                aead: XChaCha20Poly1305::new((&aead_key).into()),
                key_id: hex::encode(&blake3::derive_key("kiln backup 2024 key id", &k.0)[..8]),
            }
        });
        Self {
            level,
            max_block,
            sealing,
        }
    }

    /// The hash algorithm as recorded in manifests.
    pub fn hash_name(&self) -> &'static str {
        if self.sealing.is_some() {
            "blake3-keyed"
        } else {
            "blake3"
        }
    }

    /// The key's public fingerprint, when encrypting.
    pub fn key_id(&self) -> Option<&str> {
        self.sealing.as_ref().map(|s| s.key_id.as_str())
    }

    /// The name of a block with these bytes.
    pub fn hash(&self, plain: &[u8]) -> String {
        match &self.sealing {
            Some(s) => blake3::keyed_hash(&s.hash_key, plain).to_hex().to_string(),
            None => blake3::hash(plain).to_hex().to_string(),
        }
    }

    /// Names, compresses and (if configured) encrypts a block.
    pub fn encode(&self, plain: &[u8]) -> Result<EncodedBlock> {
        let hash = self.hash(plain);
        let frame = zstd::bulk::compress(plain, self.level)
            .map_err(|e| Error::Internal(format!("zstd compression failed: {e}")))?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + frame.len() + 16);
        out.extend_from_slice(MAGIC);
        match &self.sealing {
            None => {
                out.push(0);
                out.extend_from_slice(&frame);
            }
            Some(s) => {
                let mut nonce = [0u8; NONCE_LEN];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let sealed = s
                    .aead
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: &frame,
                            aad: hash.as_bytes(),
                        },
                    )
                    .map_err(|_| Error::Internal("block encryption failed".into()))?;
                out.push(FLAG_ENCRYPTED);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        Ok(EncodedBlock {
            hash,
            data: out.into(),
        })
    }

    /// Opens a stored block named `hash` and checks it: the header, the
    /// AEAD tag, the frame, and the hash of the plain bytes.
    pub fn decode(&self, hash: &str, stored: &[u8]) -> Result<Vec<u8>> {
        let corrupt = |reason: &str| Error::Corrupt {
            what: format!("block {hash}"),
            reason: reason.to_string(),
        };
        if stored.len() < HEADER_LEN || &stored[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not a kiln block (bad header)"));
        }
        let flags = stored[MAGIC.len()];
        let body = &stored[HEADER_LEN..];
        let opened;
        let frame = match (flags & FLAG_ENCRYPTED != 0, &self.sealing) {
            (false, None) => body,
            (true, Some(s)) => {
                if body.len() < NONCE_LEN {
                    return Err(corrupt("truncated nonce"));
                }
                let (nonce, sealed) = body.split_at(NONCE_LEN);
                opened = s
                    .aead
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: hash.as_bytes(),
                        },
                    )
                    .map_err(|_| corrupt("authentication tag does not match"))?;
                &opened[..]
            }
            (true, None) => return Err(corrupt("encrypted, but no encryption key is configured")),
            (false, Some(_)) => return Err(corrupt("not encrypted, but encryption is configured")),
        };
        let plain = zstd::bulk::decompress(frame, self.max_block)
            .map_err(|e| corrupt(&format!("zstd frame does not decode: {e}")))?;
        if self.hash(&plain) != hash {
            return Err(corrupt("content does not match its hash"));
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn plain_blocks_round_trip_and_detect_damage() {
        let codec = BlockCodec::new(3, 1 << 20, None);
        let b = codec.encode(&sample()).expect("encode");
        assert_eq!(b.hash, blake3::hash(&sample()).to_hex().as_str());
        assert_eq!(codec.decode(&b.hash, &b.data).expect("decode"), sample());

        let mut bad = b.data.to_vec();
        let last = bad.len() - 3;
        bad[last] ^= 0xff;
        let err = codec.decode(&b.hash, &bad).expect_err("damaged");
        assert!(
            err.to_string().contains(&format!("block {}", b.hash)),
            "{err}"
        );
    }

    #[test]
    fn sealed_blocks_hide_names_and_open_only_with_their_key() {
        let key = EncryptionKey::from_bytes([7; 32]);
        let codec = BlockCodec::new(3, 1 << 20, Some(&key));
        let b = codec.encode(&sample()).expect("encode");
        assert_ne!(b.hash, blake3::hash(&sample()).to_hex().as_str());
        assert_eq!(codec.decode(&b.hash, &b.data).expect("decode"), sample());

        let other = BlockCodec::new(3, 1 << 20, Some(&EncryptionKey::from_bytes([8; 32])));
        assert!(other.decode(&b.hash, &b.data).is_err());
        let plain = BlockCodec::new(3, 1 << 20, None);
        let err = plain.decode(&b.hash, &b.data).expect_err("no key");
        assert!(err.to_string().contains("no encryption key"), "{err}");
        // Sealed under its name: another name does not open it.
        assert!(codec.decode(&"00".repeat(32), &b.data).is_err());
    }
}
