//! Errors of the diffusion layer.
//!
//! One enum for the crate, one variant per reason, each naming the field and the offending value,
//! so that the CLI can print a single line a user can act on (`weights[3] = -0.2: must be positive`).
//! Errors of the generic numerics are wrapped with `#[from]`.

use scoresde_solvers::{Num, SolverError};

/// Everything that can go wrong in the `scoresde` crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// A scalar parameter outside its admissible range.
    #[error("{name} = {}: {expected}", Num(*value))]
    InvalidParameter {
        /// Field name as the user wrote it (`beta_max`, `sigma_min`, ...).
        name: String,
        /// The offending value.
        value: f64,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A mixture weight that is not positive and finite.
    #[error("weights[{index}] = {value}: must be positive and finite")]
    InvalidWeight {
        /// Component index.
        index: usize,
        /// The offending weight.
        value: f64,
    },
    /// Mixture weights that do not sum to one.
    #[error("weights sum to {sum}: must sum to 1 within 1e-9")]
    WeightsDoNotSumToOne {
        /// The computed sum.
        sum: f64,
    },
    /// A non-finite number in an input array or file.
    #[error("{field}[{index}] = {value}: must be finite")]
    NonFiniteInput {
        /// Which input (`means`, `z-init`, ...).
        field: String,
        /// Flat index of the first bad entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A covariance matrix that is not symmetric positive definite.
    #[error("{field}[{component}] is not positive definite (smallest eigenvalue {min_eigenvalue})")]
    NotPositiveDefinite {
        /// Which covariance key (`variances`, `diag`, `full`).
        field: &'static str,
        /// Component index.
        component: usize,
        /// Smallest eigenvalue found.
        min_eigenvalue: f64,
    },
    /// A covariance matrix that is not symmetric.
    #[error("full[{component}] is not symmetric: entry ({row}, {col}) = {a} but ({col}, {row}) = {b}")]
    NotSymmetric {
        /// Component index.
        component: usize,
        /// Row of the mismatch.
        row: usize,
        /// Column of the mismatch.
        col: usize,
        /// Value at (row, col).
        a: f64,
        /// Value at (col, row).
        b: f64,
    },
    /// Arrays whose sizes do not agree.
    #[error("{what}: expected {expected}, found {found}")]
    DimensionMismatch {
        /// What was being compared (`means[2] length`, `z-init columns`, ...).
        what: String,
        /// Expected size.
        expected: usize,
        /// Size found.
        found: usize,
    },
    /// A malformed target description (JSON structure, missing or duplicate keys).
    #[error("target: {0}")]
    Target(String),
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed `.npy` file.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: String,
        /// What was wrong (dtype, shape, parse error).
        message: String,
    },
    /// A neural score model or checkpoint that cannot be used (missing tensor, wrong shape,
    /// config mismatch), or a failure inside the tensor library.
    #[error("{context}: {message}")]
    Model {
        /// The checkpoint file or the operation.
        context: String,
        /// What was wrong.
        message: String,
    },
    /// A solver used where it cannot work.
    #[error("solver {solver}: needs {requirement}")]
    Incompatible {
        /// The solver's name.
        solver: &'static str,
        /// What it needs.
        requirement: &'static str,
    },
    /// A name that is not one of the known ones (a solver, a predictor).
    #[error("{field} = {value:?}: unknown (expected one of {expected})")]
    UnknownName {
        /// The field (`solver`, `predictor`).
        field: &'static str,
        /// The name given.
        value: String,
        /// The known names.
        expected: String,
    },
    /// An option a solver does not take, or a value of the wrong kind for it.
    #[error("solver {solver}: option {option} = {value}: {expected}")]
    InvalidOption {
        /// The solver's name.
        solver: &'static str,
        /// The option's name.
        option: String,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A size whose allocation could not fit in memory, refused before allocating.
    #[error("{field} = {value}: {what} need {needs}, more than this machine's {available} of memory")]
    TooLarge {
        /// The flag or field.
        field: String,
        /// Its value.
        value: usize,
        /// What would be allocated.
        what: String,
        /// Bytes needed, human-readable.
        needs: String,
        /// The machine's memory, human-readable.
        available: String,
    },
    /// A solve that stopped, in words that name its variable (sigma~ for solves in sigma space).
    #[error("{0}")]
    Stopped(String),
    /// A solver or a system it integrates met a problem.
    #[error(transparent)]
    Solver(#[from] SolverError),
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, ScoreError>;
