//! Uses every dependency, so that none of them is compiled for nothing.

use clap::Parser;
use itertools::Itertools;
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "a1 b22 c333")]
    text: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Found {
    words: Vec<String>,
    digits: usize,
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    let args = Args::parse();
    let re = regex::Regex::new(r"\d+")?;
    let found = Found {
        words: args.text.split_whitespace().map(str::to_owned).sorted().collect(),
        digits: re.find_iter(&args.text).map(|m| m.len()).sum(),
    };
    log::info!("{found:?}");
    println!("{}", serde_json::to_string(&found)?);
    Ok(())
}
