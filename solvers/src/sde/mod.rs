//! Stochastic steppers ([`crate::SdeStepper`]): Euler-Maruyama on the reverse SDE, the DDPM
//! posterior and reverse-diffusion steps in t, k-diffusion's and EDM's ancestral-type samplers in
//! sigma space, and the predictor-corrector pair whose Langevin moves are extra draws.

pub mod ald;
pub mod ancestral;
pub mod ddpm;
pub mod dpmpp_2m_sde;
pub mod edm_sde;
pub mod em;
pub mod euler_ancestral;
pub mod pc;
