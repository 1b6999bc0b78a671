//! Values an expression evaluates to.

use crate::labels::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// The sample's own timestamp when it came straight from a vector selector, otherwise
    /// the evaluation time (milliseconds).
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector (or of a range query's result).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub labels: Labels,
    /// `(timestamp_ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// The result of evaluating an expression at one instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<SeriesPoints>),
}

impl Value {
    /// The Prometheus name of this value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
