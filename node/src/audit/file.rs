//! The audit file: appended to, and rotated by size so an audit trail cannot fill the disk.
//! `<path>` is the current file; `<path>.1` the newest rotated one, up to `<path>.<max_files>`;
//! the oldest beyond that is deleted by the rename that would have shifted it.

use std::io;
use std::path::{Path, PathBuf};

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (creating, appending to) `path`.
    pub async fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<RotatingFile> {
        let file = append(path).await?;
        let size = file.metadata().await?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            max_bytes,
            max_files,
            file,
            size,
        })
    }

    /// Writes one line, rotating first if it would take the file past `max_bytes`. A line
    /// is never split across files.
    pub async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate().await?;
        }
        self.file.write_all(line).await?;
        self.file.flush().await?;
        self.size += len;
        Ok(())
    }

    async fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.max_files).rev() {
            match tokio::fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        tokio::fs::rename(&self.path, numbered(&self.path, 1)).await?;
        self.file = append(&self.path).await?;
        self.size = 0;
        Ok(())
    }
}

async fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
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
    #[tokio::test]
    async fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(&path, 100, 2).await.unwrap();
        // 39-byte lines: two fit in 100 bytes, the third rotates.
        let line = |i: u32| format!("{i:038}\n");
        for i in 0..9u32 {
            f.write_line(line(i).as_bytes()).await.unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let lines = |s: String| -> Vec<u32> { s.lines().map(|l| l.parse().unwrap()).collect() };
        assert_eq!(lines(read(path.clone())), vec![8]);
        assert_eq!(lines(read(numbered(&path, 1))), vec![6, 7]);
        assert_eq!(lines(read(numbered(&path, 2))), vec![4, 5]);
        assert!(!numbered(&path, 3).exists());
        // Reopening counts what the file holds: line 10 no longer fits beside 8 and 9.
        let mut g = RotatingFile::open(&path, 100, 2).await.unwrap();
        for i in 9..11u32 {
            g.write_line(line(i).as_bytes()).await.unwrap();
        }
        assert_eq!(lines(read(path.clone())), vec![10]);
        assert_eq!(lines(read(numbered(&path, 1))), vec![8, 9]);
        assert_eq!(lines(read(numbered(&path, 2))), vec![6, 7]);
    }
}
