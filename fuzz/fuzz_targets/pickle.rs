//! The pickle reader and torch-file reader behind `lm-train import-fastai`, on arbitrary
//! bytes: they must return a value or an error, never panic, hang, or allocate without bound
//! (libFuzzer's -rss_limit_mb and -timeout catch the last two). Seeds: a fastai v1 legacy
//! `.pth`, an itos pickle, and a zip-format state dict written by our own writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::{pickle, torch_file};

fuzz_target!(|data: &[u8]| {
    let _ = pickle::parse(data);
    let _ = pickle::parse_prefix(data);
    if let Ok(list) = pickle::load_string_list(data) {
        // what we read we can write back, and read again the same
        let again = pickle::dump_string_list(&list);
        assert_eq!(pickle::load_string_list(&again).unwrap(), list);
    }
    let _ = torch_file::read_state_dict(data);
});
