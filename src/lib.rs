//! scoresde: the diffusion layer.
#![warn(missing_docs)]

pub mod error;
