//! Fuzz the channel decoder: any bytes a peer can send, cut into reads at any points, must
//! give messages or an error — never a panic, never unbounded memory.
#![no_main]

use cluster_walkthrough::framing::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where reads are cut, so splits across reads get explored too.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut).max(1);
    let mut d = Decoder::new();
    for chunk in rest.chunks(step) {
        if d.push(chunk, Vec::new()).is_err() {
            return;
        }
    }
    let _ = d.finish();
});
