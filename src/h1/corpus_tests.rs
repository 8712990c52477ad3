//! The conformance kit's cases (`tests/conformance/cases`, see its README.md) run against
//! [`parse_head`] and [`ChunkedDecoder`] directly, without a server: the same bytes `run.py`
//! sends, judged by the same expectations, for the requests the parser alone can decide.
//!
//! * `reject`: the first request must be refused: an error whose status the case lists, or a
//!   head or body still incomplete when the bytes end (the server would wait, then close).
//! * `echo`: each expected request must parse, in order, with the method, target, version,
//!   field lines, decoded body and (when the case lists them) trailers it expects; a refusal
//!   of the first request passes if its status is in `reject_ok`. Between pipelined requests
//!   the client must allow the connection to persist (`keep_alive`), and after the last one of
//!   an `"after": "close"` case it must not.
//!
//! Cases with `requires_config` are skipped, as `run.py` skips them without `--with-config`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{BodyFraming, ChunkedDecoder, Error, Limits, RawHead, parse_head};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/cases");

/// The server's default limits (`--limit-request-*`, see docs/settings.md), the ones the kit
/// runs against.
const LIMITS: Limits = Limits {
    request_line: 8190,
    fields: 100,
    field_size: 8190,
    body: 104_857_600,
};

#[test]
fn conformance_cases() {
    let root = Path::new(CASES);
    assert!(
        root.is_dir(),
        "the conformance cases are missing: expected a directory at {}",
        root.display()
    );
    let mut files = Vec::new();
    case_files(root, &mut files);
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let cases: Vec<Value> = if file.extension().is_some_and(|e| e == "jsonl") {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).expect("a JSON case per line"))
                .collect()
        } else {
            vec![serde_json::from_str(&text).expect("a JSON case")]
        };
        for case in cases {
            if case.get("requires_config").is_some() {
                continue;
            }
            checked += 1;
            let name = case["name"].as_str().unwrap_or("(unnamed)").to_string();
            if let Err(reason) = check(&case) {
                failures.push(format!("FAIL {name}: {reason}"));
            }
        }
    }
    println!(
        "{checked} conformance cases checked, {} failed",
        failures.len()
    );
    assert!(checked > 0, "no case found under {}", root.display());
    assert!(
        failures.is_empty(),
        "{} of {checked} conformance cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every `.json` and `.jsonl` file under `dir`, in name order (as `run.py` walks them).
fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            case_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "json" || e == "jsonl")
        {
            out.push(path);
        }
    }
}

/// One request as the parser and decoder saw it.
struct Got {
    method: Vec<u8>,
    target: Vec<u8>,
    version: String,
    headers: Vec<Field>,
    body: Vec<u8>,
    trailers: Vec<Field>,
    keep_alive: bool,
    /// Bytes the request took, head and body.
    len: usize,
}

type Field = (Vec<u8>, Vec<u8>);

fn check(case: &Value) -> Result<(), String> {
    let raw = raw_bytes(&case["raw"])?;
    let expect = &case["expect"];
    match expect["outcome"].as_str() {
        Some("reject") => {
            let statuses = statuses(&expect["status"]);
            match request_at(&raw) {
                Ok(None) => Ok(()),
                Err(e) if statuses.contains(&e.status().as_u16()) => Ok(()),
                Err(e) => Err(format!(
                    "refused with {} ({}), the case accepts {statuses:?}",
                    e.status().as_u16(),
                    e.name()
                )),
                Ok(Some(got)) => Err(format!(
                    "accepted {} {}",
                    latin1(&got.method),
                    latin1(&got.target)
                )),
            }
        }
        Some("echo") => check_echo(&raw, expect),
        other => Err(format!("unknown outcome {other:?}")),
    }
}

fn check_echo(raw: &[u8], expect: &Value) -> Result<(), String> {
    let reject_ok = statuses(&expect["reject_ok"]);
    let wanted = expect["requests"]
        .as_array()
        .ok_or("expect.requests is not a list")?;
    let ignore: Vec<Vec<u8>> = expect["ignore_headers"]
        .as_array()
        .map(|names| names.iter().filter_map(|n| bytes(n).ok()).collect())
        .unwrap_or_default();
    let mut at = 0;
    let mut last_keep_alive = true;
    for (i, want) in wanted.iter().enumerate() {
        let got = match request_at(&raw[at..]) {
            Ok(Some(got)) => got,
            Err(e) if i == 0 && reject_ok.contains(&e.status().as_u16()) => return Ok(()),
            Err(e) => {
                return Err(format!(
                    "request #{} refused with {} ({})",
                    i + 1,
                    e.status().as_u16(),
                    e.name()
                ));
            }
            Ok(None) => return Err(format!("request #{} is incomplete", i + 1)),
        };
        if i > 0 && !last_keep_alive {
            return Err(format!(
                "the connection would close before request #{}",
                i + 1
            ));
        }
        compare(want, &got, &ignore).map_err(|e| format!("request #{}: {e}", i + 1))?;
        last_keep_alive = got.keep_alive;
        at += got.len;
    }
    if expect["after"].as_str() == Some("close") && last_keep_alive {
        return Err("the case expects a close after the last request; keep_alive is true".into());
    }
    Ok(())
}

fn compare(want: &Value, got: &Got, ignore: &[Vec<u8>]) -> Result<(), String> {
    let same = |key: &str, got: &[u8]| -> Result<(), String> {
        let want = bytes(&want[key])?;
        if want == got {
            Ok(())
        } else {
            Err(format!(
                "{key}: expected {:?}, got {:?}",
                latin1(&want),
                latin1(got)
            ))
        }
    };
    same("method", &got.method)?;
    same("target", &got.target)?;
    let versions: Vec<&str> = match &want["version"] {
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        v => v.as_str().into_iter().collect(),
    };
    if !versions.contains(&got.version.as_str()) {
        return Err(format!(
            "version: expected {versions:?}, got {}",
            got.version
        ));
    }
    let kept = |fields: &[Field]| -> Vec<Field> {
        fields
            .iter()
            .filter(|(n, _)| !ignore.iter().any(|i| i.eq_ignore_ascii_case(n)))
            .cloned()
            .collect()
    };
    compare_fields(
        "headers",
        &kept(&fields(&want["headers"])?),
        &kept(&got.headers),
    )?;
    same("body", &got.body).or_else(|e| {
        // A missing "body" means an empty one.
        if want.get("body").is_none() && got.body.is_empty() {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if want.get("trailers").is_some() {
        compare_fields("trailers", &fields(&want["trailers"])?, &got.trailers)?;
    }
    Ok(())
}

/// Field lists as `run.py` compares them: same count and order, names case-insensitive,
/// values equal after trimming SP and HTAB.
fn compare_fields(what: &str, want: &[Field], got: &[Field]) -> Result<(), String> {
    let trim = |v: &[u8]| -> Vec<u8> {
        let range = super::grammar::trim_ows(v);
        v[range].to_vec()
    };
    let show = |fields: &[Field]| -> Vec<(String, String)> {
        fields.iter().map(|(n, v)| (latin1(n), latin1(v))).collect()
    };
    let same = want.len() == got.len()
        && want
            .iter()
            .zip(got)
            .all(|((wn, wv), (gn, gv))| wn.eq_ignore_ascii_case(gn) && trim(wv) == trim(gv));
    if same {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {:?}, got {:?}",
            show(want),
            show(got)
        ))
    }
}

/// Parses the request at the start of `buf` and reads its body. `Ok(None)`: the head or the
/// body is not complete when the bytes end.
fn request_at(buf: &[u8]) -> Result<Option<Got>, Error> {
    let Some(parsed) = parse_head(buf, &LIMITS)? else {
        return Ok(None);
    };
    let raw = parsed
        .request
        .extensions()
        .get::<RawHead>()
        .expect("parse_head attaches the RawHead");
    let rest = &buf[parsed.head_len..];
    let (body, used, trailers) = match parsed.body {
        BodyFraming::None => (Vec::new(), 0, Vec::new()),
        BodyFraming::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= rest.len() => (rest[..n].to_vec(), n, Vec::new()),
            _ => return Ok(None),
        },
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(&LIMITS);
            let mut out = vec![0u8; 4096];
            let (mut body, mut at) = (Vec::new(), 0);
            loop {
                let step = decoder.decode(&rest[at..], &mut out)?;
                body.extend_from_slice(&out[..step.written]);
                at += step.consumed;
                if step.done {
                    break (body, at, decoder.trailers().to_vec());
                }
                if at == rest.len() && step.written < out.len() {
                    return Ok(None);
                }
            }
        }
    };
    Ok(Some(Got {
        method: raw.method().to_vec(),
        target: raw.target().to_vec(),
        version: latin1(raw.version()),
        headers: raw
            .fields()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        body,
        trailers,
        keep_alive: parsed.keep_alive,
        len: parsed.head_len + used,
    }))
}

/// The bytes `run.py` sends: `raw` is a string or a list of segments (strings, `repeat`,
/// `base64`; `pause` and `await_response` only change timing).
fn raw_bytes(raw: &Value) -> Result<Vec<u8>, String> {
    let segments = match raw {
        Value::Array(list) => list.as_slice(),
        single => std::slice::from_ref(single),
    };
    let mut out = Vec::new();
    for segment in segments {
        match segment {
            Value::String(_) => out.extend(bytes(segment)?),
            Value::Object(o) if o.contains_key("repeat") => {
                let count = o.get("count").and_then(Value::as_u64).unwrap_or(1);
                let unit = bytes(&o["repeat"])?;
                for _ in 0..count {
                    out.extend_from_slice(&unit);
                }
            }
            Value::Object(o) if o.contains_key("base64") => {
                let text = o["base64"].as_str().ok_or("base64 is not a string")?;
                out.extend(base64(text)?);
            }
            Value::Object(o) if o.contains_key("pause") || o.contains_key("await_response") => {}
            other => return Err(format!("unknown raw segment {other}")),
        }
    }
    Ok(out)
}

/// A JSON string as bytes: each code point U+0000 to U+00FF is one byte (latin-1).
fn bytes(v: &Value) -> Result<Vec<u8>, String> {
    let text = v.as_str().ok_or_else(|| format!("{v} is not a string"))?;
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("{c:?} is above U+00FF")))
        .collect()
}

/// A `headers` or `trailers` list: `[name, value]` pairs or `{"repeat": [name, value],
/// "count": n}`.
fn fields(v: &Value) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    for entry in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        let (pair, count) = match entry {
            Value::Object(o) => (
                &o["repeat"],
                o.get("count").and_then(Value::as_u64).unwrap_or(1),
            ),
            pair => (pair, 1),
        };
        let field = (bytes(&pair[0])?, bytes(&pair[1])?);
        for _ in 0..count {
            out.push(field.clone());
        }
    }
    Ok(out)
}

fn statuses(v: &Value) -> Vec<u16> {
    v.as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_u64)
                .filter_map(|s| u16::try_from(s).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&b| char::from(b)).collect()
}

/// Standard base64 (RFC 4648 section 4), padding optional.
fn base64(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("bad base64 byte {c:?}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[test]
fn base64_decodes() {
    assert_eq!(base64("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
    assert_eq!(base64("").unwrap(), b"");
    assert_eq!(base64("/w==").unwrap(), b"\xff");
}
