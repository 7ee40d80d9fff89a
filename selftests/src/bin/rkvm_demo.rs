// SPDX-License-Identifier: GPL-2.0

//! The `make run` demo: talk to rkvm the way a VMM does and show what it answers.

use kvm_ioctls::Kvm;

fn main() {
    let kvm = match Kvm::new_with_path(c"/dev/rkvm") {
        Ok(kvm) => kvm,
        Err(e) => {
            eprintln!("rkvm-demo: cannot open /dev/rkvm: {e}");
            std::process::exit(1);
        }
    };
    println!("rkvm-demo: /dev/rkvm answers KVM_GET_API_VERSION = {}", kvm.get_api_version());
    match kvm.get_vcpu_mmap_size() {
        Ok(size) => println!("rkvm-demo: kvm_run mapping size = {size} bytes"),
        Err(e) => println!("rkvm-demo: KVM_GET_VCPU_MMAP_SIZE failed: {e}"),
    }
    let caps: Vec<u64> = (0..512u64).filter(|&c| kvm.check_extension_raw(c as _) > 0).collect();
    println!("rkvm-demo: capabilities reported: {caps:?}");
    match kvm.create_vm() {
        Ok(_) => println!("rkvm-demo: created a VM"),
        Err(e) => println!("rkvm-demo: KVM_CREATE_VM: {e} (VMs arrive with the run loop)"),
    }
}
