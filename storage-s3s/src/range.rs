//! Byte ranges of an object, all parsed by s3s's [`Range`]: the HTTP
//! `Range` header of a download ([`byte_range`]) and S3's
//! `x-amz-copy-source-range` of UploadPartCopy ([`copy_source_range`]),
//! which allows only `bytes=first-last`.

use s3s::dto::Range;

/// A `Range` header that no byte of the object satisfies.
#[derive(Debug, thiserror::Error)]
#[error("the range cannot be satisfied")]
pub struct UnsatisfiableRange;

/// The byte span an HTTP `Range` header asks of an object of `size` bytes:
/// `Ok(None)` for the whole object.
pub fn byte_range(
    header: Option<&str>,
    size: u64,
) -> Result<Option<std::ops::Range<u64>>, UnsatisfiableRange> {
    let Some(header) = header else {
        return Ok(None);
    };
    let range = Range::parse(header).map_err(|_| UnsatisfiableRange)?;
    range.check(size).map(Some).map_err(|_| UnsatisfiableRange)
}

/// Why an `x-amz-copy-source-range` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CopyRangeError {
    /// Not `bytes=first-last` with both bounds (S3's `InvalidArgument`).
    #[error("x-amz-copy-source-range must be bytes=first-last")]
    Malformed,
    /// `first > last`, or `last` past the source's end (S3's `InvalidRange`).
    #[error("the copy source range cannot be satisfied")]
    Unsatisfiable,
}

/// The byte span an `x-amz-copy-source-range` takes of a source of `size`
/// bytes: all of it when there is no header. Unlike a download's `Range`,
/// both bounds are required and `last` must lie within the source.
pub fn copy_source_range(
    header: Option<&str>,
    size: u64,
) -> Result<std::ops::Range<u64>, CopyRangeError> {
    let Some(header) = header else {
        return Ok(0..size);
    };
    match Range::parse(header) {
        Ok(Range::Int {
            first,
            last: Some(last),
        }) if last < size => Ok(first..last + 1),
        Ok(Range::Int { last: Some(_), .. }) => Err(CopyRangeError::Unsatisfiable),
        Ok(Range::Int { last: None, .. } | Range::Suffix { .. }) => Err(CopyRangeError::Malformed),
        Err(_) if reversed(header) => Err(CopyRangeError::Unsatisfiable),
        Err(_) => Err(CopyRangeError::Malformed),
    }
}

/// Whether `header` is `bytes=first-last` but for `first > last`, which
/// [`Range::parse`] refuses like any malformed range while S3 answers it
/// with `InvalidRange`. Each bound is read by [`Range::parse`] too: the
/// first as `bytes=first-`, the last as the suffix `bytes=-last`.
fn reversed(header: &str) -> bool {
    let Some((from, last)) = header.rsplit_once('-') else {
        return false;
    };
    let first = Range::parse(&format!("{from}-"));
    let last = Range::parse(&format!("bytes=-{last}"));
    matches!(
        (first, last),
        (Ok(Range::Int { first, last: None }), Ok(Range::Suffix { length }))
            if first > length
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_ranges() {
        assert_eq!(byte_range(None, 10).unwrap(), None);
        assert_eq!(byte_range(Some("bytes=2-5"), 10).unwrap(), Some(2..6));
        assert_eq!(byte_range(Some("bytes=2-"), 10).unwrap(), Some(2..10));
        assert_eq!(byte_range(Some("bytes=-3"), 10).unwrap(), Some(7..10));
        // A last byte past the end is cut to the end, as HTTP says.
        assert_eq!(byte_range(Some("bytes=5-99"), 10).unwrap(), Some(5..10));
        assert!(byte_range(Some("bytes=10-"), 10).is_err());
        assert!(byte_range(Some("bytes=-0"), 10).is_err());
        assert!(byte_range(Some("bytes=5-2"), 10).is_err());
        assert!(byte_range(Some("lines=1-2"), 10).is_err());
    }

    #[test]
    fn copy_range_of_whole_source_without_header() {
        assert_eq!(copy_source_range(None, 10), Ok(0..10));
        assert_eq!(copy_source_range(None, 0), Ok(0..0));
    }

    #[test]
    fn copy_range_valid() {
        assert_eq!(copy_source_range(Some("bytes=0-9"), 10), Ok(0..10));
        assert_eq!(copy_source_range(Some("bytes=2-5"), 10), Ok(2..6));
        assert_eq!(copy_source_range(Some("bytes=9-9"), 10), Ok(9..10));
        assert_eq!(copy_source_range(Some("bytes=0-0"), 1), Ok(0..1));
    }

    #[test]
    fn copy_range_refuses_open_ended_and_suffix_forms() {
        use CopyRangeError::Malformed;
        assert_eq!(copy_source_range(Some("bytes=2-"), 10), Err(Malformed));
        assert_eq!(copy_source_range(Some("bytes=-3"), 10), Err(Malformed));
        assert_eq!(copy_source_range(Some("bytes=-"), 10), Err(Malformed));
    }

    #[test]
    fn copy_range_past_the_end() {
        use CopyRangeError::Unsatisfiable;
        assert_eq!(
            copy_source_range(Some("bytes=0-10"), 10),
            Err(Unsatisfiable)
        );
        assert_eq!(
            copy_source_range(Some("bytes=10-12"), 10),
            Err(Unsatisfiable)
        );
        assert_eq!(copy_source_range(Some("bytes=0-0"), 0), Err(Unsatisfiable));
    }

    #[test]
    fn copy_range_first_after_last() {
        use CopyRangeError::Unsatisfiable;
        assert_eq!(copy_source_range(Some("bytes=5-2"), 10), Err(Unsatisfiable));
        assert_eq!(
            copy_source_range(Some("bytes=50-20"), 10),
            Err(Unsatisfiable)
        );
        assert_eq!(copy_source_range(Some("bytes=1-0"), 10), Err(Unsatisfiable));
    }

    #[test]
    fn copy_range_garbage() {
        use CopyRangeError::Malformed;
        for header in [
            "",
            "bytes",
            "bytes=",
            "2-5",
            "lines=2-5",
            "bytes 2-5",
            "bytes=2",
            "bytes=a-b",
            "bytes=2-b",
            "bytes=a-5",
            "bytes= 2-5",
            "bytes=2-5 ",
            "bytes=2-5,7-8",
            "bytes=5-2-1",
            "bytes=5--2",
            "bytes=0-99999999999999999999",
        ] {
            assert_eq!(
                copy_source_range(Some(header), 10),
                Err(Malformed),
                "{header:?}"
            );
        }
    }
}
