//! Spin's variable templates (`"{{ greeting }}, world"`) and variable
//! names, as Spin's `spin-expressions` defines them: literal text with
//! `{{ name }}` parts, no escapes, no filters.

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Variable(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("unmatched '{{{{' in template")]
    Unmatched,
    #[error("{0:?} is not a valid variable name")]
    InvalidName(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Unmatched)?;
            let name = after[..end].trim();
            if !valid_variable_name(name) {
                return Err(TemplateError::InvalidName(name.to_owned()));
            }
            parts.push(Part::Variable(name.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub fn literal(text: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Literal(text.into())],
        }
    }

    /// The variables it names.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The text with each variable replaced by what `resolve` says; the
    /// first variable it cannot resolve is the error.
    pub fn render<E>(
        &self,
        mut resolve: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(&resolve(name)?),
            }
        }
        Ok(out)
    }
}

/// Spin's rule for variable names: lower-case ASCII letters, digits and
/// `_`, starting with a letter, ending with a letter or digit, no `__`.
pub fn valid_variable_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !name.ends_with('_')
        && !name.contains("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_their_variables() {
        let t = Template::parse("{{ greeting }}, {{name}}!").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), ["greeting", "name"]);
        let out: Result<String, ()> = t.render(|n| Ok(n.to_uppercase()));
        assert_eq!(out.unwrap(), "GREETING, NAME!");
        assert_eq!(
            Template::parse("plain").unwrap(),
            Template::literal("plain")
        );
        assert_eq!(
            Template::parse("a {{ b").unwrap_err(),
            TemplateError::Unmatched
        );
        assert!(matches!(
            Template::parse("{{ Bad }}"),
            Err(TemplateError::InvalidName(_))
        ));
    }

    #[test]
    fn variable_names_follow_spin() {
        for good in ["a", "api_key", "x1", "a_b_c"] {
            assert!(valid_variable_name(good), "{good}");
        }
        for bad in ["", "_a", "1a", "A", "a__b", "a_", "a-b", "a.b"] {
            assert!(!valid_variable_name(bad), "{bad}");
        }
    }
}
