//! Client histories: what each client asked, what it was told, and when.
//!
//! # File format (JSON lines)
//! One operation per line, a JSON object with these fields:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `client` | integer | who issued it (a client has one operation outstanding at a time) |
//! | `key` | string | the key |
//! | `op` | `"get"`, `"put"`, `"cas"` or `"delete"` | the operation |
//! | `value` | string | `put` and `cas`: the value written |
//! | `expect` | string or `null` | `cas`: the value required (`null`: the key must be absent) |
//! | `call` | integer | when the client sent it (any monotonic clock, one for all clients) |
//! | `return` | integer, `null` or absent | when the answer arrived; `null`/absent: never (the outcome is unknown: it may or may not have taken effect) |
//! | `result` | string or `null` | `get`: the value read (`null`: absent) |
//! | `ok` | boolean | `cas`: whether it succeeded |
//!
//! Example:
//! ```text
//! {"client":1,"key":"k1","op":"put","value":"v1","call":10,"return":20}
//! {"client":2,"key":"k1","op":"get","call":15,"return":30,"result":"v1"}
//! {"client":1,"key":"k1","op":"cas","expect":"v1","value":"v2","call":40,"return":null}
//! ```

use std::fmt;

use serde_json::{json, Map, Value as Json};

/// What an operation asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Read the key.
    Get,
    /// Write the key.
    Put(String),
    /// Write `value` if the key holds `expect` (`None`: if it is absent).
    Cas {
        /// The value required.
        expect: Option<String>,
        /// The value written.
        value: String,
    },
    /// Remove the key.
    Delete,
}

/// What the client was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// A read's result.
    Get(Option<String>),
    /// A write or delete was acknowledged.
    Done,
    /// Whether a compare-and-set succeeded.
    Cas(bool),
    /// No answer: the operation may or may not have taken effect.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client that issued it.
    pub client: u64,
    /// The key.
    pub key: String,
    /// What was asked.
    pub input: Input,
    /// What was answered.
    pub output: Output,
    /// When it was sent.
    pub call: u64,
    /// When the answer arrived (`None`: never).
    pub ret: Option<u64>,
}

/// Why a history file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for ParseError {}

/// Parses a JSON-lines history. Blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Operation>, ParseError> {
    let mut operations = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let operation = parse_line(line).map_err(|problem| ParseError {
            line: index + 1,
            problem,
        })?;
        operations.push(operation);
    }
    Ok(operations)
}

fn parse_line(line: &str) -> Result<Operation, String> {
    let object: Map<String, Json> = match serde_json::from_str(line) {
        Ok(Json::Object(object)) => object,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("not valid JSON ({e})")),
    };
    let client = integer(&object, "client")?;
    let key = string(&object, "key")?;
    let call = integer(&object, "call")?;
    let ret = match object.get("return") {
        None | Some(Json::Null) => None,
        Some(_) => Some(integer(&object, "return")?),
    };
    if ret.is_some_and(|ret| ret < call) {
        return Err(format!(
            "returns at {} before its call at {call}",
            ret.unwrap_or(0)
        ));
    }
    let known = ret.is_some();
    let (input, output) = match string(&object, "op")?.as_str() {
        "get" => {
            let output = if known {
                Output::Get(nullable_string(&object, "result")?)
            } else {
                Output::Unknown
            };
            (Input::Get, output)
        }
        "put" => (
            Input::Put(string(&object, "value")?),
            done_or_unknown(known),
        ),
        "delete" => (Input::Delete, done_or_unknown(known)),
        "cas" => {
            let input = Input::Cas {
                expect: nullable_string(&object, "expect")?,
                value: string(&object, "value")?,
            };
            let output = if known {
                Output::Cas(boolean(&object, "ok")?)
            } else {
                Output::Unknown
            };
            (input, output)
        }
        other => {
            return Err(format!(
                "unknown op {other:?} (expected get, put, cas or delete)"
            ))
        }
    };
    Ok(Operation {
        client,
        key,
        input,
        output,
        call,
        ret,
    })
}

fn done_or_unknown(known: bool) -> Output {
    if known {
        Output::Done
    } else {
        Output::Unknown
    }
}

fn field<'a>(object: &'a Map<String, Json>, name: &str) -> Result<&'a Json, String> {
    object
        .get(name)
        .ok_or_else(|| format!("missing field {name:?}"))
}

fn integer(object: &Map<String, Json>, name: &str) -> Result<u64, String> {
    field(object, name)?
        .as_u64()
        .ok_or_else(|| format!("field {name:?} must be a non-negative integer"))
}

fn string(object: &Map<String, Json>, name: &str) -> Result<String, String> {
    field(object, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("field {name:?} must be a string"))
}

fn nullable_string(object: &Map<String, Json>, name: &str) -> Result<Option<String>, String> {
    match field(object, name)? {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        _ => Err(format!("field {name:?} must be a string or null")),
    }
}

fn boolean(object: &Map<String, Json>, name: &str) -> Result<bool, String> {
    field(object, name)?
        .as_bool()
        .ok_or_else(|| format!("field {name:?} must be true or false"))
}

/// One operation as a line of the file format.
pub fn to_line(op: &Operation) -> String {
    let mut object = json!({
        "client": op.client,
        "key": op.key,
        "call": op.call,
        "return": op.ret,
    });
    let fields = match &op.input {
        Input::Get => json!({"op": "get"}),
        Input::Put(value) => json!({"op": "put", "value": value}),
        Input::Delete => json!({"op": "delete"}),
        Input::Cas { expect, value } => json!({"op": "cas", "expect": expect, "value": value}),
    };
    let result = match &op.output {
        Output::Get(result) => json!({ "result": result }),
        Output::Cas(ok) => json!({ "ok": ok }),
        Output::Done | Output::Unknown => json!({}),
    };
    for extra in [fields, result] {
        if let (Json::Object(object), Json::Object(extra)) = (&mut object, extra) {
            object.extend(extra);
        }
    }
    object.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_operation_round_trips() {
        let text = r#"{"client":1,"key":"k1","op":"put","value":"v1","call":10,"return":20}
{"client":2,"key":"k1","op":"get","call":15,"return":30,"result":"v1"}
{"client":2,"key":"k2","op":"get","call":31,"return":32,"result":null}

{"client":1,"key":"k1","op":"cas","expect":"v1","value":"v2","call":40,"return":null}
{"client":3,"key":"k1","op":"cas","expect":null,"value":"v3","call":41,"return":50,"ok":false}
{"client":3,"key":"k1","op":"delete","call":51}
"#;
        let ops = parse(text).unwrap();
        assert_eq!(ops.len(), 6);
        assert_eq!(ops[1].output, Output::Get(Some("v1".into())));
        assert_eq!(ops[2].output, Output::Get(None));
        assert_eq!(ops[3].output, Output::Unknown);
        assert_eq!(
            ops[4].input,
            Input::Cas {
                expect: None,
                value: "v3".into()
            }
        );
        assert_eq!((ops[5].input.clone(), ops[5].ret), (Input::Delete, None));
        let again: String = ops.iter().map(|op| to_line(op) + "\n").collect();
        assert_eq!(parse(&again).unwrap(), ops);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let cases = [
            ("{\"client\":1", "not valid JSON"),
            ("[1,2]", "not a JSON object"),
            (
                r#"{"client":1,"key":"k","op":"put","call":1}"#,
                "missing field \"value\"",
            ),
            (
                r#"{"client":1,"key":"k","op":"nop","call":1}"#,
                "unknown op",
            ),
            (
                r#"{"client":-1,"key":"k","op":"get","call":1}"#,
                "non-negative integer",
            ),
            (
                r#"{"client":1,"key":"k","op":"get","call":9,"return":3,"result":null}"#,
                "before its call",
            ),
            (
                r#"{"client":1,"key":"k","op":"cas","expect":1,"value":"v","call":1,"return":2,"ok":true}"#,
                "string or null",
            ),
        ];
        for (line, problem) in cases {
            let text = format!("\n{line}\n");
            let error = parse(&text).unwrap_err();
            assert_eq!(error.line, 2, "{line}");
            assert!(error.problem.contains(problem), "{line}: {}", error.problem);
        }
    }
}
