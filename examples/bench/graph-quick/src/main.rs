//! Uses every dependency, so each is really compiled and linked.

paste::paste! {
    fn [<answer_ for_ bench>]() -> u64 {
        42
    }
}

fn main() -> anyhow::Result<()> {
    log::info!("not shown: no logger is installed");
    let mut buf = itoa::Buffer::new();
    let text = buf.format(answer_for_bench());
    let at = memchr::memchr(b'2', text.as_bytes()).ok_or_else(|| anyhow::anyhow!("no 2"))?;
    println!("{text} {at}");
    Ok(())
}
