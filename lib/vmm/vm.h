// One microVM: KVM objects, guest memory, devices, vCPU threads and the event
// loop. A Vm can be created, run to the end and destroyed many times in one
// process (the tests do); only the C shim turns the result into exit().
#pragma once

#include <memory>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace krunlet {

struct VmRunOptions {
    // Filter the calling thread too, once the VM threads are started. Only for
    // a caller that never gets the thread back (krun_start_enter): the filter
    // stays for the thread's life. Tests that run many VMs in one process
    // leave it off. (The VM's own threads are always filtered.)
    bool sandbox_caller = false;
};

class Vm {
public:
    // Build everything up to (not including) the first KVM_RUN.
    static Result<std::unique_ptr<Vm>> create(const VmConfig& config, uint64_t start_ns = 0);
    ~Vm();

    // Run the guest until it ends; returns how it ended.
    VmOutcome run(const VmRunOptions& options = {});
    // Ask a running VM to end (any thread, async-signal-unsafe).
    void request_stop(int exit_code, const char* reason);

    struct Impl;

private:
    explicit Vm(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

uint64_t monotonic_ns();

}  // namespace krunlet
