//! Tether Rust client SDK (grows with the resume issue).
