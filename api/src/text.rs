//! [`Text`]: a request body's string field that is a JSON string and nothing else.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::ParseResult;

/// A JSON string, as the document says. poem-openapi's `String` also takes a number
/// or a boolean and turns it into text (`"server_name": 123` was stored as "123"); this
/// keeps any other JSON value aside, so that the request is refused naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(Result<String, &'static str>);

impl Text {
    /// The text, or why there is none: `"{field} must be a string, not a number"`.
    pub fn as_str(&self, field: &str) -> Result<&str, String> {
        match &self.0 {
            Ok(text) => Ok(text),
            Err(kind) => Err(format!("{field} must be a string, not {kind}")),
        }
    }
}

impl poem_openapi::types::Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> std::borrow::Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&String> {
        self.0.as_ref().ok()
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.0.as_ref().ok().into_iter())
    }
}

impl poem_openapi::types::ParseFromJSON for Text {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        use serde_json::Value;
        Ok(Text(match value.unwrap_or_default() {
            Value::String(text) => Ok(text),
            Value::Null => Err("null"),
            Value::Bool(_) => Err("a boolean"),
            Value::Number(_) => Err("a number"),
            Value::Array(_) => Err("an array"),
            Value::Object(_) => Err("an object"),
        }))
    }
}

impl poem_openapi::types::ToJSON for Text {
    fn to_json(&self) -> Option<serde_json::Value> {
        self.0.clone().ok().map(serde_json::Value::String)
    }
}
