//! CUDA facts that tch does not expose: a device's compute capability, from the CUDA runtime
//! (libcudart) that libtorch's CUDA backend loaded ([`crate::runtime::load_cuda_backend`]).

use std::ffi::{c_int, c_void, CStr};

/// `cudaDevAttrComputeCapabilityMajor` / `Minor` of the CUDA runtime's `cudaDeviceAttr`.
const ATTR_MAJOR: c_int = 75;
const ATTR_MINOR: c_int = 76;

type GetAttribute = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;

/// `cudaDeviceGetAttribute`, found in the process (libtorch_cuda brings libcudart along).
fn get_attribute() -> Option<GetAttribute> {
    let name: &CStr = c"cudaDeviceGetAttribute";
    #[allow(unsafe_code)]
    // SAFETY: dlsym/dlopen with valid NUL-terminated names. RTLD_NOLOAD only returns handles
    // of libraries already loaded (never loads one, and the reference it adds is never
    // released, so the library stays mapped). A non-null symbol named cudaDeviceGetAttribute
    // in libcudart has the C signature `cudaError_t (int*, cudaDeviceAttr, int)`, which is
    // `GetAttribute`.
    unsafe {
        let mut sym: *mut c_void = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
        for lib in [c"libcudart.so.13", c"libcudart.so.12", c"libcudart.so"] {
            if !sym.is_null() {
                break;
            }
            let h = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
            if !h.is_null() {
                sym = libc::dlsym(h, name.as_ptr());
            }
        }
        (!sym.is_null()).then(|| std::mem::transmute::<*mut c_void, GetAttribute>(sym))
    }
}

/// The compute capability (major, minor) of CUDA device `device`, when the CUDA runtime is
/// loaded and answers.
pub fn compute_capability(device: usize) -> Option<(i32, i32)> {
    let f = get_attribute()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    #[allow(unsafe_code)]
    // SAFETY: `f` is cudaDeviceGetAttribute (see get_attribute); it writes one int through a
    // valid pointer to a local and returns an error code for a bad device.
    let ok = unsafe {
        f(&mut major, ATTR_MAJOR, device as c_int) == 0
            && f(&mut minor, ATTR_MINOR, device as c_int) == 0
    };
    ok.then_some((major, minor))
}

/// Whether CUDA device `device` computes bf16 natively (compute capability 8.0, Ampere, and
/// later), as PyTorch's `torch.cuda.is_bf16_supported()` decides.
pub fn has_native_bf16(device: usize) -> bool {
    compute_capability(device).is_some_and(|(major, _)| major >= 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the CUDA backend loaded, the capability query agrees with libtorch: an answer
    /// exactly when a CUDA device is there (no driver or no GPU: the runtime returns an error,
    /// which is `None`, not a crash).
    #[test]
    fn compute_capability_agrees_with_libtorch() {
        if crate::runtime::load_cuda_backend().is_err() {
            eprintln!("skipped: no CUDA backend in this libtorch");
            return;
        }
        match compute_capability(0) {
            Some((major, minor)) => {
                assert!(tch::Cuda::is_available());
                assert!((3..20).contains(&major) && (0..10).contains(&minor));
                assert_eq!(has_native_bf16(0), major >= 8);
            }
            None => {
                assert!(!tch::Cuda::is_available());
                assert!(!has_native_bf16(0));
            }
        }
        assert_eq!(compute_capability(1 << 20), None);
    }
}
