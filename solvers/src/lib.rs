//! The integrators of scoresde: time grids, steppers and the loops that drive them, and the
//! noise they consume. States are `N x d` `ndarray` batches of `f64`, one sample per row.
//!
//! Steppers are written against small capability traits, not against a diffusion model:
//! [`OdeSystem`] (a right-hand side), [`SdeSystem`] (drift and diffusion), [`SemiLinear`] (alpha,
//! sigma and eps in process time) and [`SigmaSpace`] (eps in EDM's variables). The generic
//! methods ([`rk`], Euler-Maruyama) are tested here on linear ODEs and Ornstein-Uhlenbeck
//! processes with exact solutions; the diffusion samplers ([`exponential`], most of [`sde`]) need
//! the last two traits, which the `scoresde` crate implements for a process and a score model.
//!
//! - [`stepper`]: the fixed-grid traits [`OdeStepper`], [`SdeStepper`] and their loops;
//!   [`embedded`] and [`controller`]: the adaptive driver and its step-size controllers.
//! - [`rk`]: Butcher tableaus, the explicit Runge-Kutta stepper, embedded pairs.
//! - [`exponential`]: solvers in sigma space (DDIM, DPM-Solver(++), UniPC, DEIS, DPM-2, LMS).
//! - [`sde`]: stochastic steppers (Euler-Maruyama, DDPM posterior, ancestral, EDM churn, PC).
//! - [`noise`]: noise sources and the key space of their draws; the virtual Brownian tree.
//! - [`grid`], [`system`], [`par`], [`error`]: grids, capability traits, parallel passes, errors.
#![warn(missing_docs)]

pub mod controller;
pub mod embedded;
pub mod error;
pub mod exponential;
pub mod grid;
pub mod noise;
pub mod par;
pub mod rk;
pub mod sde;
pub mod stepper;
pub mod system;

pub use controller::{PiController, PidController, StepController, Verdict};
pub use embedded::{integrate_adaptive, EmbeddedStepper, Landing, Span, Trial};
pub use error::{Num, Result, SolverError};
pub use exponential::ddim::Ddim;
pub use exponential::deis::Deis;
pub use exponential::dpm2::Dpm2;
pub use exponential::dpm_adaptive::DpmSolverAdaptive;
pub use exponential::dpm_solver::{fast_orders, DpmSolver};
pub use exponential::dpm_solver_multistep::DpmSolverMultistep;
pub use exponential::dpmpp_2m::DpmPp2M;
pub use exponential::dpmpp_2m_cfg_pp::DpmPp2MCfgPp;
pub use exponential::dpmpp_multistep::DpmSolverPpMultistep;
pub use exponential::dpmpp_singlestep::DpmSolverPpSinglestep;
pub use exponential::euler_cfg_pp::EulerCfgPp;
pub use exponential::euler_logsnr::EulerLogSnr;
pub use exponential::lms::Lms;
pub use exponential::unipc::UniPc;
pub use grid::TimeGrid;
pub use noise::brownian::{BrownianNoise, BrownianTree};
pub use noise::{Draw, FixedNoise, KeyedNoise, NoiseSource};
pub use rk::adaptive::{AdaptiveOptions, AdaptiveRk, AdaptiveStats};
pub use rk::explicit::ExplicitRk;
pub use rk::tableau::ButcherTableau;
pub use sde::ald::AnnealedLangevin;
pub use sde::ancestral::{Ancestral, ReverseDiffusion};
pub use sde::ddpm::{Ddpm, DdpmVariance};
pub use sde::dpmpp_2m_sde::DpmPp2MSde;
pub use sde::edm_sde::EdmSde;
pub use sde::em::EulerMaruyama;
pub use sde::euler_ancestral::EulerAncestral;
pub use sde::pc::{LangevinCorrector, NoMove, Pc};
pub use stepper::{integrate_ode, integrate_sde, no_observer, OdeStepper, SdeStepper, StepInfo, StepNoise};
pub use system::{Counted, GuidedSigmaSpace, OdeSystem, SdeSystem, SemiLinear, SigmaSpace};
