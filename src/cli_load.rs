//! `pushwire load`: flags and output (the generator is `pushwire::client::load`).
use clap::Args;

#[derive(Args, Clone)]
pub struct LoadArgs {}

pub fn run(_args: &LoadArgs) -> std::io::Result<()> {
    Err(std::io::Error::other("not yet"))
}
