//! JSON pointers (RFC 6901) naming where in a message a problem was found.

use std::fmt;

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A member of an object.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// A JSON pointer (RFC 6901) such as `/params/arguments`; the empty pointer is the whole value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pointer(String);

impl Pointer {
    pub(crate) fn from_segments(segments: &[Segment]) -> Self {
        let mut text = String::new();
        for segment in segments {
            text.push('/');
            match segment {
                Segment::Key(key) => text.push_str(&key.replace('~', "~0").replace('/', "~1")),
                Segment::Index(index) => text.push_str(&index.to_string()),
            }
        }
        Self(text)
    }

    /// The pointer as RFC 6901 text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Longest pointer shown in full by `Display`; longer ones keep their start and end.
const MAX_SHOWN_BYTES: usize = 200;

impl fmt::Display for Pointer {
    /// Shows the pointer, eliding the middle of very long ones (keys are peer-controlled).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.as_str();
        if text.len() <= MAX_SHOWN_BYTES {
            return f.write_str(text);
        }
        let half = MAX_SHOWN_BYTES / 2;
        let head_end = (0..=half)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let tail_start = (text.len() - half..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        let head = text.get(..head_end).unwrap_or_default();
        let tail = text.get(tail_start..).unwrap_or_default();
        write!(f, "{head}…{tail}")
    }
}
