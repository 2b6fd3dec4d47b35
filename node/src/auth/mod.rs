//! Token verification (filled in by the auth work).
