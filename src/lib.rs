//! scoresde: the diffusion layer.
//!
//! Forward processes ([`process`]), score models and their parameterisations ([`model`]), the
//! exact Gaussian-mixture target ([`gmm`]), the systems that turn a process and a model into an
//! ODE or SDE ([`reverse`]), time grids ([`grids`]), end-to-end sampling ([`sampler`]), sample
//! metrics ([`metrics`]), a neural score model trained by denoising score matching ([`nn`]) and
//! file I/O ([`io`]); [`fastexp`] is the vectorisable `exp` of the mixture kernel. The generic
//! numerics live in `scoresde-solvers` and know nothing about diffusion; this crate is where the
//! two meet.
#![warn(missing_docs)]

pub mod elbo;
pub mod error;
pub mod fastexp;
pub mod gaussian;
pub mod gmm;
pub mod grids;
pub mod guidance;
pub mod inpaint;
pub mod io;
pub mod likelihood;
pub mod limits;
pub mod metrics;
pub mod model;
#[cfg(feature = "nn")]
pub mod nn;
pub mod process;
pub mod reverse;
pub mod sampler;
#[cfg(feature = "nn")]
mod tablexp;
pub mod targets;

pub use error::{Result, ScoreError};
