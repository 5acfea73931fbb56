//! Runge-Kutta methods: Butcher tableaus as checked data ([`tableau`]), one fixed-step stepper for
//! every tableau ([`explicit`]), and embedded pairs with error control ([`adaptive`]) for the
//! adaptive driver ([`crate::embedded`]).

pub mod adaptive;
pub mod explicit;
pub mod tableau;
