//! HTTP/1.1 to a member's client port, as the JSON gateway's clients speak it, in plain
//! text on a fresh connection per request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// An answer: status code, headers (names lowercased), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// One HTTP/1.1 request with `headers` and `body` (JSON) on a fresh connection
/// (`Connection: close`, so the answer ends with the connection).
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut tcp = TcpStream::connect(address).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let length = body.len();
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{body}"
    )
    .unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("an answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked");
    Answer {
        status: status.parse().expect("a status code"),
        headers,
        body: if chunked {
            unchunk(body)
        } else {
            body.to_string()
        },
    }
}

/// A chunked body's content: each chunk is its size in hex, CRLF, the bytes, CRLF.
fn unchunk(mut body: &str) -> String {
    let mut content = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        content.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    content
}

/// `answer`'s JSON without what differs between any two clusters (ids, terms).
pub fn scrubbed(answer: &Answer) -> (u16, Value) {
    fn scrub(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for field in ["cluster_id", "member_id", "raft_term"] {
                    map.remove(field);
                }
                map.values_mut().for_each(scrub);
            }
            Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    let mut json =
        serde_json::from_str(answer.body.trim()).unwrap_or(Value::String(answer.body.clone()));
    scrub(&mut json);
    (answer.status, json)
}
