//! What every concern's errors share: one way to show an error with its sources.
//!
//! **Architecture Invariant:** this module is a leaf; it imports nothing from the crate. Each
//! concern owns its error enum, and the command line's [`crate::cli::Error`] gathers them.

/// An error and its sources on one line, `a: b: c`, for logs and event records.
pub fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn sources_follow_on_one_line() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(report(&e), "outer: inner");
    }
}
