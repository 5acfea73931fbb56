//! Reading and writing mixtures as JSON: `{"weights", "means"}` plus one of `"variances"`,
//! `"diag"`, `"full"`, every error naming the key and the value.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use serde_json::{Map, Value};

use super::{check_weights, mismatch, Covariance, GaussianMixture};
use crate::error::{Result, ScoreError};

impl GaussianMixture {
    /// Parses a mixture from JSON:
    /// `{"weights": [..K], "means": [[..d]..K]}` plus exactly one of
    /// `"variances": [..K]`, `"diag": [[..d]..K]`, `"full": [[[..d]..d]..K]`.
    ///
    /// Numbers are parsed with correct rounding by serde_json's `float_roundtrip` (so
    /// [`to_json_string`](Self::to_json_string) round-trips bit for bit; tested against Rust's own
    /// correctly rounded parser); numbers too large for `f64` are a JSON error. Malformed JSON, wrong types, missing, unknown or
    /// conflicting keys give [`ScoreError::Target`] naming the key; shapes and values are
    /// validated as in [`new`](Self::new), with shape errors named after the JSON path
    /// (`means[2] length`, `diag[1] length`, `variances length`, `full[0] rows`, ...).
    pub fn from_json_str(s: &str) -> Result<Self> {
        let Strict(value) = serde_json::from_str(s).map_err(|e| ScoreError::Target(format!("invalid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| {
            ScoreError::Target(format!(
                "top level must be an object with keys weights, means and one of variances, \
                 diag, full; found {}",
                show(&value)
            ))
        })?;
        const KNOWN: [&str; 5] = ["weights", "means", "variances", "diag", "full"];
        if let Some(key) = obj.keys().find(|key| !KNOWN.contains(&key.as_str())) {
            return Err(ScoreError::Target(format!(
                "unknown key \"{key}\" (allowed: weights, means, and one of variances, diag, full)"
            )));
        }
        let weights = json_vector(required(obj, "weights")?, "weights")?;
        check_weights(&weights)?;
        let k = weights.len();

        let means = json_matrix(required(obj, "means")?, "means")?;
        if means.len() != k {
            return Err(mismatch("means length", k, means.len()));
        }
        let d = means[0].len();
        if d == 0 {
            return Err(ScoreError::InvalidParameter {
                name: "means[0] length".into(),
                value: 0.0,
                expected: "at least 1 (dimension d >= 1)",
            });
        }
        check_rows(&means, "means", d)?;
        let means = to_array2(&means, d);

        let present: Vec<&str> =
            ["variances", "diag", "full"].into_iter().filter(|key| obj.contains_key(*key)).collect();
        let cov = match present.as_slice() {
            [] => {
                return Err(ScoreError::Target(
                    "missing covariance: need exactly one of the keys \"variances\", \"diag\", \
                     \"full\""
                        .into(),
                ))
            }
            ["variances"] => {
                let v = json_vector(&obj["variances"], "variances")?;
                if v.len() != k {
                    return Err(mismatch("variances length", k, v.len()));
                }
                Covariance::Isotropic(v)
            }
            ["diag"] => {
                let v = json_matrix(&obj["diag"], "diag")?;
                if v.len() != k {
                    return Err(mismatch("diag length", k, v.len()));
                }
                check_rows(&v, "diag", d)?;
                Covariance::Diagonal(to_array2(&v, d))
            }
            ["full"] => {
                let list = json_array(&obj["full"], "full")?;
                if list.len() != k {
                    return Err(mismatch("full length", k, list.len()));
                }
                let mut mats = Vec::with_capacity(k);
                for (c, m) in list.iter().enumerate() {
                    let field = format!("full[{c}]");
                    let rows = json_matrix(m, &field)?;
                    if rows.len() != d {
                        return Err(mismatch(&format!("{field} rows"), d, rows.len()));
                    }
                    check_rows(&rows, &field, d)?;
                    mats.push(to_array2(&rows, d));
                }
                Covariance::Full(mats)
            }
            more => {
                return Err(ScoreError::Target(format!(
                    "more than one covariance key ({}): need exactly one of \"variances\", \
                     \"diag\", \"full\"",
                    more.join(", ")
                )))
            }
        };
        Self::new(weights, means, cov)
    }

    /// Reads a mixture from a JSON file (format of [`from_json_str`](Self::from_json_str)).
    ///
    /// I/O failures give [`ScoreError::Io`] naming the path; [`ScoreError::Target`] messages
    /// are prefixed with the path.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScoreError::Io { path: path.display().to_string(), source })?;
        Self::from_json_str(&text).map_err(|e| match e {
            ScoreError::Target(msg) => ScoreError::Target(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Serialises the mixture as pretty-printed JSON that
    /// [`from_json_str`](Self::from_json_str) reads back bit for bit.
    pub fn to_json_string(&self) -> String {
        let mut obj = Map::new();
        obj.insert("weights".into(), Value::from(self.weights.clone()));
        obj.insert("means".into(), matrix_value(self.means.view()));
        let (key, value) = match &self.cov {
            Covariance::Isotropic(v) => ("variances", Value::from(v.clone())),
            Covariance::Diagonal(v) => ("diag", matrix_value(v.view())),
            Covariance::Full(m) => ("full", Value::Array(m.iter().map(|m| matrix_value(m.view())).collect())),
        };
        obj.insert(key.into(), value);
        serde_json::to_string_pretty(&Value::Object(obj)).expect("finite numbers always serialise")
    }
}

/// A value as the user wrote it, shortened.
fn show(v: &Value) -> String {
    let text = match v {
        Value::Array(a) => format!("an array of length {}", a.len()),
        Value::Object(_) => "an object".to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value> {
    obj.get(key).ok_or_else(|| ScoreError::Target(format!("missing key \"{key}\"")))
}

fn json_number(v: &Value, field: &str) -> Result<f64> {
    v.as_f64().ok_or_else(|| ScoreError::Target(format!("{field}: expected a number, found {}", show(v))))
}

fn json_array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| ScoreError::Target(format!("{field}: expected an array, found {}", show(v))))
}

fn json_vector(v: &Value, field: &str) -> Result<Vec<f64>> {
    json_array(v, field)?.iter().enumerate().map(|(i, x)| json_number(x, &format!("{field}[{i}]"))).collect()
}

fn json_matrix(v: &Value, field: &str) -> Result<Vec<Vec<f64>>> {
    json_array(v, field)?.iter().enumerate().map(|(i, row)| json_vector(row, &format!("{field}[{i}]"))).collect()
}

fn check_rows(rows: &[Vec<f64>], field: &str, d: usize) -> Result<()> {
    for (i, row) in rows.iter().enumerate() {
        if row.len() != d {
            return Err(mismatch(&format!("{field}[{i}] length"), d, row.len()));
        }
    }
    Ok(())
}

fn to_array2(rows: &[Vec<f64>], d: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows.len(), d), |(i, j)| rows[i][j])
}

fn matrix_value(m: ArrayView2<f64>) -> Value {
    Value::Array(m.outer_iter().map(|row| Value::from(row.to_vec())).collect())
}

/// A JSON value whose objects may not repeat a key (serde_json's `Value` keeps the last one
/// silently, so `{"weights": [..], "weights": [..]}` would read as the second).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = vec![];
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(key.clone(), v).is_some() {
                return Err(serde::de::Error::custom(format!("duplicate key \"{key}\"")));
            }
        }
        Ok(Value::Object(out))
    }
}
