//! Input types that can only hold valid values ("parse, don't validate"): request bodies are turned into these before
//! any database work, and each failure names its field. One file per type, with its tests.

mod email;
mod name;
mod password;
mod tenant_slug;
mod testio_token;

pub use email::Email;
pub use name::{display_name_pattern, parse_name};
pub use password::Password;
pub use tenant_slug::TenantSlug;
pub use testio_token::TestioToken;

use crate::error::FieldError;

/// Builds a [`FieldError`].
pub fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: message.into() }
}

/// Whether `c` is invisible or changes how the text around it is shown: control characters, format characters (such
/// as the right-to-left override U+202E, the zero-width space U+200B and the tag characters U+E0020-U+E007F that can
/// smuggle hidden text), and line and paragraph separators. Names and emails shown to other people must not hide what
/// they say.
pub(crate) fn is_deceptive(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(c.general_category(), G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator)
}
