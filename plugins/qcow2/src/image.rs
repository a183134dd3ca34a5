//! qcow2 images: `qemu-img` for making, growing, copying and mapping them,
//! and the image header for their size.

use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_core::exec::Tool;
use serde::Deserialize;

use crate::error::Qcow2Error;

/// The first bytes of every qcow2 image.
const MAGIC: &[u8; 4] = b"QFI\xfb";

/// `qemu-img`, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct QemuImg {
    tool: Tool,
}

/// One extent of `qemu-img map --output=json`.
#[derive(Debug, Deserialize)]
struct Extent {
    start: u64,
    length: u64,
    data: bool,
}

impl QemuImg {
    pub(crate) fn resolve() -> Result<Self, Qcow2Error> {
        let tool = Tool::resolve("qemu-img").map_err(|source| Qcow2Error::MissingTool {
            tool: "qemu-img (qemu-utils)",
            source,
        })?;
        Ok(Self { tool })
    }

    /// Makes an empty (all-zero, unallocated) image of `bytes`.
    pub(crate) async fn create(&self, image: &Path, bytes: u64) -> Result<(), Qcow2Error> {
        self.tool
            .command()
            .args(["create", "-q", "-f", "qcow2"])
            .arg(image)
            .arg(bytes.to_string())
            .run()
            .await
            .map(drop)
            .map_err(Qcow2Error::tool("qemu-img create", image))
    }

    /// Grows the image's virtual size to `bytes`.
    pub(crate) async fn grow(&self, image: &Path, bytes: u64) -> Result<(), Qcow2Error> {
        self.tool
            .command()
            .args(["resize", "-q", "-f", "qcow2"])
            .arg(image)
            .arg(bytes.to_string())
            .run()
            .await
            .map(drop)
            .map_err(Qcow2Error::tool("qemu-img resize", image))
    }

    /// Copies `src` into a new standalone image `dst`; zero and
    /// unallocated clusters stay unallocated, so the copy costs the data.
    pub(crate) async fn copy(&self, src: &Path, dst: &Path) -> Result<(), Qcow2Error> {
        self.tool
            .command()
            .args(["convert", "-q", "-f", "qcow2", "-O", "qcow2"])
            .arg(src)
            .arg(dst)
            .run()
            .await
            .map(drop)
            .map_err(Qcow2Error::tool("qemu-img convert", src))
    }

    /// The sorted, merged byte ranges of the image that hold data.
    ///
    /// `-U` reads the map even while another process (a VMM, a raw view)
    /// holds the image.
    pub(crate) async fn data_ranges(&self, image: &Path) -> Result<Vec<Range<u64>>, Qcow2Error> {
        let out = self
            .tool
            .command()
            .args(["map", "-U", "-f", "qcow2", "--output=json"])
            .arg(image)
            .run()
            .await
            .map_err(Qcow2Error::tool("qemu-img map", image))?;
        let extents: Vec<Extent> =
            serde_json::from_str(&out.stdout).map_err(|source| Qcow2Error::Parse {
                path: image.to_path_buf(),
                source,
            })?;
        Ok(merge(extents))
    }
}

fn merge(extents: Vec<Extent>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for e in extents.into_iter().filter(|e| e.data && e.length > 0) {
        let r = e.start..e.start + e.length;
        match out.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => out.push(r),
        }
    }
    out
}

/// The image's virtual size, from its header (bytes 24..32, big-endian).
pub(crate) fn virtual_size(image: &Path) -> Result<u64, Qcow2Error> {
    let mut header = [0u8; 32];
    std::fs::File::open(image)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(Qcow2Error::io("read the header of", image))?;
    if &header[..4] != MAGIC {
        return Err(Qcow2Error::NotQcow2 {
            path: image.to_path_buf(),
            reason: "bad magic".to_string(),
        });
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&header[24..32]);
    Ok(u64::from_be_bytes(size))
}

/// Bytes the image file occupies on the host filesystem.
pub(crate) fn allocated_bytes(image: &Path) -> Result<u64, Qcow2Error> {
    let meta = std::fs::metadata(image).map_err(Qcow2Error::io("stat", image))?;
    Ok(meta.blocks() * 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_data_extents_merge_and_holes_drop() {
        let json = r#"[
            {"start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true},
            {"start": 65536, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true},
            {"start": 131072, "length": 1048576, "depth": 0, "present": false, "zero": true, "data": false},
            {"start": 1179648, "length": 4096, "depth": 0, "present": true, "zero": false, "data": true}
        ]"#;
        let extents: Vec<Extent> = serde_json::from_str(json).expect("qemu-img map output");
        assert_eq!(merge(extents), vec![0..131072, 1179648..1183744]);
    }
}
