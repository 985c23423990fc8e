//! Compresses and decompresses a little text, so the C code is linked and used.
fn main() {
    let text = b"maybe-sccache benchmark: C through the sccache alias".repeat(8);
    let packed = zstd::encode_all(&text[..], 3).expect("compress");
    let unpacked = zstd::decode_all(&packed[..]).expect("decompress");
    assert_eq!(unpacked, text);
    println!("{} -> {} bytes", text.len(), packed.len());
}
