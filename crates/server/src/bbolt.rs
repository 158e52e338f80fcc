//! A read-only reader of bbolt databases (the file `etcdctl snapshot save` writes), enough
//! to walk a bucket's keys and values in order. Every read is bounds-checked: a truncated
//! or damaged file is refused with the page and what is wrong, never a panic.
//!
//! # The format (bbolt 1.3, 64-bit little-endian; `docs/STORAGE-FORMAT.md` has it too)
//! - The file is pages of `page_size` bytes. Each page begins with a 16-byte header: id
//!   (u64), flags (u16: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist), count (u16,
//!   elements), overflow (u32, pages after this one that the page spans).
//! - Pages 0 and 1 are metas: after the header, magic `0xED0CDAED` (u32), version 2 (u32),
//!   page size (u32), flags (u32), the root bucket (root page u64, sequence u64), the
//!   freelist page (u64), the high-water page (u64), the transaction id (u64), and an
//!   FNV-1a 64 checksum of the 56 bytes before it. The valid meta with the higher
//!   transaction id is the database.
//! - A branch page holds `count` elements of 16 bytes: the key's offset from the element
//!   (u32), the key's size (u32), the child page (u64). A leaf page holds elements of 16
//!   bytes: flags (u32, 0x01 for a sub-bucket), the key's offset from the element (u32),
//!   key size (u32), value size (u32); the value follows the key.
//! - A bucket's value is its root page (u64) and sequence (u64); a root of 0 means an
//!   inline bucket, whose page (header and elements) follows in the value itself.

use std::fmt;

const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
/// B+tree depth bound: a cycle of pages in a damaged file must not loop for ever.
const DEPTH_MAX: usize = 64;

/// What is wrong with a database file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoltError {
    /// The page, if the problem is one page's.
    pub page: Option<u64>,
    pub what: String,
}

impl fmt::Display for BoltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.page {
            Some(page) => write!(f, "page {page}: {}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

impl std::error::Error for BoltError {}

fn error<T>(page: Option<u64>, what: impl Into<String>) -> Result<T, BoltError> {
    Err(BoltError {
        page,
        what: what.into(),
    })
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a walk calls for each key and value: an error stops the walk.
pub type Visit<'v> = dyn FnMut(&[u8], &[u8]) -> Result<(), BoltError> + 'v;

/// What the tree walk calls for each leaf element: its flags, key and value.
type Element<'v> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), BoltError> + 'v;

/// An open database: the file's bytes and its current root.
#[derive(Debug)]
pub struct Db<'a> {
    file: &'a [u8],
    page_size: usize,
    root: u64,
}

/// A page: its bytes (the whole span, overflow included) and its id, for errors.
#[derive(Clone, Copy)]
struct Page<'a> {
    id: Option<u64>,
    bytes: &'a [u8],
}

impl<'a> Page<'a> {
    fn flags(&self) -> Option<u16> {
        u16_at(self.bytes, 8)
    }

    fn count(&self) -> Option<usize> {
        u16_at(self.bytes, 10).map(usize::from)
    }

    /// Element `i`'s fields and its key and value (leaf) or child (branch).
    fn element(&self, i: usize, leaf: bool) -> Result<(u32, &'a [u8], Value<'a>), BoltError> {
        let at = PAGE_HEADER + i * ELEMENT;
        let bad = |what: &str| error(self.id, format!("element {i}: {what}"));
        let (Some(first), Some(second), Some(third), Some(fourth)) = (
            u32_at(self.bytes, at),
            u32_at(self.bytes, at + 4),
            u32_at(self.bytes, at + 8),
            u32_at(self.bytes, at + 12),
        ) else {
            return bad("past the end of the page");
        };
        // A branch element is pos, ksize, child (u64); a leaf one flags, pos, ksize, vsize.
        let (flags, pos, ksize) = match leaf {
            true => (first, second, third),
            false => (0, first, second),
        };
        let start = usize::try_from(pos).ok().and_then(|p| at.checked_add(p));
        let key_end = start.and_then(|s| s.checked_add(usize::try_from(ksize).ok()?));
        let (Some(start), Some(key_end)) = (start, key_end) else {
            return bad("key offset overflows");
        };
        let Some(key) = self.bytes.get(start..key_end) else {
            return bad("key past the end of the page");
        };
        if !leaf {
            // Branch: the child page is the element's last 8 bytes.
            let child = u64::from(third) | (u64::from(fourth) << 32);
            return Ok((0, key, Value::Child(child)));
        }
        let value_end = usize::try_from(fourth)
            .ok()
            .and_then(|v| key_end.checked_add(v));
        let Some(value) = value_end.and_then(|end| self.bytes.get(key_end..end)) else {
            return bad("value past the end of the page");
        };
        Ok((flags, key, Value::Bytes(value)))
    }
}

enum Value<'a> {
    Bytes(&'a [u8]),
    Child(u64),
}

impl<'a> Db<'a> {
    /// Opens `file`: checks both metas and takes the newer valid one.
    pub fn open(file: &'a [u8]) -> Result<Db<'a>, BoltError> {
        let first = meta(file, 0, 0)?;
        let page_size = first.as_ref().map_or(4096, |m| m.page_size);
        let second = meta(file, 1, page_size)?;
        let newest = match (first, second) {
            (Some(a), Some(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return error(None, "not a bbolt database: neither meta page is valid"),
        };
        Ok(Db {
            file,
            page_size: newest.page_size,
            root: newest.root,
        })
    }

    fn page(&self, id: u64) -> Result<Page<'a>, BoltError> {
        let start = usize::try_from(id)
            .ok()
            .and_then(|id| id.checked_mul(self.page_size));
        let at = |s: usize| Some((s, self.file.get(s..s.checked_add(PAGE_HEADER)?)?));
        let Some((start, header)) = start.and_then(at) else {
            return error(Some(id), "past the end of the file (truncated?)");
        };
        let overflow = u32_at(header, 12)
            .and_then(|o| usize::try_from(o).ok())
            .unwrap_or(0);
        let span = overflow
            .checked_add(1)
            .and_then(|pages| pages.checked_mul(self.page_size));
        let Some(bytes) = span.and_then(|span| self.file.get(start..start.checked_add(span)?))
        else {
            return error(
                Some(id),
                "its overflow runs past the end of the file (truncated?)",
            );
        };
        if u64_at(bytes, 0) != Some(id) {
            return error(Some(id), "its header names another page");
        }
        Ok(Page {
            id: Some(id),
            bytes,
        })
    }

    /// Calls `each` with every key and value of the top-level bucket `name`, in key
    /// order (sub-buckets are skipped). `None` if there is no such bucket.
    pub fn for_each(&self, name: &[u8], each: &mut Visit<'_>) -> Result<Option<()>, BoltError> {
        let mut bucket = None;
        let root = self.page(self.root)?;
        self.walk(root, 0, &mut |flags, key, value| {
            if flags & BUCKET_LEAF != 0 && key == name {
                bucket = Some(value.to_vec());
            }
            Ok(())
        })?;
        let Some(header) = bucket else {
            return Ok(None);
        };
        let Some(root) = u64_at(&header, 0) else {
            return error(None, "a bucket header shorter than 16 bytes");
        };
        let page = if root == 0 {
            // An inline bucket: its page is in the value, after the header.
            Page {
                id: None,
                bytes: header.get(16..).unwrap_or_default(),
            }
        } else {
            self.page(root)?
        };
        let mut visit = |flags: u32, key: &[u8], value: &[u8]| {
            if flags & BUCKET_LEAF == 0 {
                each(key, value)?;
            }
            Ok(())
        };
        self.walk(page, 0, &mut visit)?;
        Ok(Some(()))
    }

    fn walk(&self, page: Page<'_>, depth: usize, each: &mut Element<'_>) -> Result<(), BoltError> {
        if depth > DEPTH_MAX {
            return error(page.id, "the tree is deeper than any real one (a cycle?)");
        }
        let (Some(flags), Some(count)) = (page.flags(), page.count()) else {
            return error(page.id, "a page shorter than its header");
        };
        match flags {
            LEAF => {
                for i in 0..count {
                    if let (flags, key, Value::Bytes(value)) = page.element(i, true)? {
                        each(flags, key, value)?;
                    }
                }
                Ok(())
            }
            BRANCH => {
                for i in 0..count {
                    if let (_, _, Value::Child(child)) = page.element(i, false)? {
                        self.walk(self.page(child)?, depth + 1, each)?;
                    }
                }
                Ok(())
            }
            other => error(
                page.id,
                format!("flags {other:#x}: neither a branch nor a leaf"),
            ),
        }
    }
}

struct Meta {
    page_size: usize,
    root: u64,
    txid: u64,
}

/// Meta page `id` at `page_size` (0: read the size from it), if valid.
fn meta(file: &[u8], id: u64, page_size: usize) -> Result<Option<Meta>, BoltError> {
    let start = usize::try_from(id)
        .unwrap_or(usize::MAX)
        .saturating_mul(page_size);
    let Some(page) = file.get(start..).filter(|p| p.len() >= PAGE_HEADER + 64) else {
        return if id == 0 {
            error(None, "shorter than a bbolt meta page")
        } else {
            Ok(None)
        };
    };
    let body = &page[PAGE_HEADER..PAGE_HEADER + 64];
    let valid = u16_at(page, 8) == Some(META)
        && u32_at(body, 0) == Some(MAGIC)
        && u32_at(body, 4) == Some(VERSION)
        && u64_at(body, 56) == Some(fnv1a(&body[..56]));
    if !valid {
        return Ok(None);
    }
    let size = u32_at(body, 8)
        .and_then(|s| usize::try_from(s).ok())
        .unwrap_or(0);
    if !(1024..=1 << 20).contains(&size) || !size.is_power_of_two() {
        return error(
            Some(id),
            format!("page size {size} is not a bbolt page size"),
        );
    }
    Ok(Some(Meta {
        page_size: size,
        root: u64_at(body, 16).unwrap_or(0),
        txid: u64_at(body, 48).unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two meta pages of 4096 bytes naming `root` as the root bucket's page.
    fn metas(root: u64) -> Vec<u8> {
        let mut file = vec![0u8; 2 * 4096];
        for (id, page) in file.chunks_mut(4096).enumerate() {
            page[..8].copy_from_slice(&(id as u64).to_le_bytes());
            page[8..10].copy_from_slice(&META.to_le_bytes());
            let body = &mut page[PAGE_HEADER..PAGE_HEADER + 64];
            body[..4].copy_from_slice(&MAGIC.to_le_bytes());
            body[4..8].copy_from_slice(&VERSION.to_le_bytes());
            body[8..12].copy_from_slice(&4096u32.to_le_bytes());
            body[16..24].copy_from_slice(&root.to_le_bytes());
            body[48..56].copy_from_slice(&(id as u64).to_le_bytes());
            let sum = fnv1a(&body[..56]);
            body[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        file
    }

    #[test]
    fn a_root_page_anywhere_is_refused_with_its_number() {
        for root in [2, 1 << 40, u64::MAX / 4096, u64::MAX] {
            let file = metas(root);
            let db = Db::open(&file).unwrap();
            let refused = db.for_each(b"key", &mut |_, _| Ok(())).unwrap_err();
            assert_eq!(refused.page, Some(root), "{refused}");
        }
    }

    #[test]
    fn damaged_metas_are_not_a_database() {
        let mut file = metas(2);
        for page in [0, 4096] {
            file[page + PAGE_HEADER + 60] ^= 1; // each checksum
        }
        assert!(Db::open(&file).is_err());
        assert!(Db::open(&file[..100]).is_err());
    }
}
