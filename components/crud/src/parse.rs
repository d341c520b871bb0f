//! PostgREST's query grammar, from the `postgrest-grammar` crate (the
//! host's trigger filters parse with it too).

pub use postgrest_grammar::*;

impl From<ParseError> for crate::error::ApiError {
    fn from(err: ParseError) -> Self {
        crate::error::ApiError::parse(err.0)
    }
}
