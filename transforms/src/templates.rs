//! Built-in templates, each written in Hog (the `.hog` files in `templates/`).
//!
//! `GET /api/hog_function_templates` lists them; a function created with a `template_id` and
//! no `hog` takes the template's source and inputs schema.

use serde_json::{json, Value};

/// A built-in template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Stable id, such as `template-pii-hashing`.
    pub id: &'static str,
    /// A name for people.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// The Hog source.
    pub hog: &'static str,
    /// The inputs it takes.
    pub inputs_schema: Value,
}

impl Template {
    /// The template as the API lists it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "type": "transformation",
            "hog": self.hog,
            "inputs_schema": self.inputs_schema,
            "status": "stable",
        })
    }
}

/// Every built-in template.
pub fn all() -> Vec<Template> {
    vec![]
}

/// The template with this id.
pub fn get(id: &str) -> Option<Template> {
    all().into_iter().find(|t| t.id == id)
}
