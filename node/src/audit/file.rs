//! The audit file: appended to, and rotated by size so an audit trail cannot fill the disk.
//! `<path>` is the current file; `<path>.1` the newest rotated one, up to `<path>.<max_files>`;
//! the oldest beyond that is deleted by the rename that would have shifted it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (creating, appending to) `path`.
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<RotatingFile> {
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            max_bytes,
            max_files,
            file,
            size,
        })
    }

    /// Writes whole lines (each ending in `\n`), rotating first whenever the next line would
    /// take the file past `max_bytes`: a line is never split across files, and the lines
    /// that share a file go out in one write.
    pub fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut rest = lines;
        while !rest.is_empty() {
            let room = self.max_bytes.saturating_sub(self.size);
            let mut take = 0;
            for line in rest.split_inclusive(|b| *b == b'\n') {
                if take > 0 && (take + line.len()) as u64 > room {
                    break;
                }
                take += line.len();
            }
            if self.size > 0 && take as u64 > room {
                self.rotate()?;
                continue;
            }
            self.file.write_all(&rest[..take])?;
            self.size += take as u64;
            rest = &rest[take..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.max_files).rev() {
            match std::fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `<path>.<i>`.
pub fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{i}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines past `max_bytes` go to a fresh file; the rotated ones shift up and the oldest
    /// beyond `max_files` is gone; no line is split or lost within what is kept.
    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        // 39-byte lines: two fit in 100 bytes, the third rotates.
        let line = |i: u32| format!("{i:038}\n");
        for i in 0..4u32 {
            f.write_lines(line(i).as_bytes()).unwrap();
        }
        // A batch of five lines is split at line boundaries across the files.
        let batch: String = (4..9u32).map(line).collect();
        f.write_lines(batch.as_bytes()).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let lines = |s: String| -> Vec<u32> { s.lines().map(|l| l.parse().unwrap()).collect() };
        assert_eq!(lines(read(path.clone())), vec![8]);
        assert_eq!(lines(read(numbered(&path, 1))), vec![6, 7]);
        assert_eq!(lines(read(numbered(&path, 2))), vec![4, 5]);
        assert!(!numbered(&path, 3).exists());
        // Reopening counts what the file holds: line 10 no longer fits beside 8 and 9.
        let mut g = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 9..11u32 {
            g.write_lines(line(i).as_bytes()).unwrap();
        }
        assert_eq!(lines(read(path.clone())), vec![10]);
        assert_eq!(lines(read(numbered(&path, 1))), vec![8, 9]);
        assert_eq!(lines(read(numbered(&path, 2))), vec![6, 7]);
    }
}
