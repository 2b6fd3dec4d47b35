//! Chaos suite (grows with the chaos issue).
