//! Builds a test image's rootfs tarball (`busybox` or `web`) and prints its path, for the demo and
//! the benchmarks, which use the same images as the tests.

fn main() {
    let path = match std::env::args().nth(1).as_deref() {
        Some("busybox") => minibox_tests::fixtures::busybox_tarball(),
        Some("web") => minibox_tests::fixtures::web_tarball(),
        _ => {
            eprintln!("usage: fixture busybox|web");
            std::process::exit(2);
        }
    };
    println!("{}", path.display());
}
