//! Runbooks: the typed model, YAML parsing with source spans, validation, `${{ }}` templating
//! and the JSON Schema of the format. Depends on nothing else in the crate.

pub mod action_spec;
pub mod diagnostic;
pub mod duration;
pub mod model;
pub mod params;
pub mod parse;
pub mod schema;
pub mod size;
pub(crate) mod suggest;
pub mod template;
#[cfg(test)]
pub(crate) mod test_catalog;
pub mod url;
pub mod validate;

pub use action_spec::{ActionCatalog, ActionSpec, Call, CallRegion, FieldKind, FieldSpec};
pub use diagnostic::{Diagnostic, DiagnosticKind, Diagnostics};
pub use duration::{
  format_duration, format_human, from_seconds_saturating, parse_duration, HumanStyle,
};
pub use model::*;
pub use params::bind_params;
pub use parse::SpanIndex;
pub use schema::json_schema;
pub use size::{format_byte_size, parse_byte_size};
pub use validate::{load, load_file};
