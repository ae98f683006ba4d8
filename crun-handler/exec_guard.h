// `exec` into a container whose process is a krunlet microVM.
//
// runc would happily start the new process next to the VMM, in the
// container's namespaces on the host, not in the guest, which is never what
// `podman exec` means. krun asks the runtime for the container's bundle and
// refuses when krun rewrote it. Other containers are not affected.
#pragma once

#include <string>

#include "base/result.h"
#include "oci_args.h"

namespace krunlet::oci {

// Error (with a clear message) when `args` is `exec` into a krun container;
// ok otherwise, including when the state cannot be read (the runtime's own
// exec then reports that).
Result<void> refuse_exec_into_vm(const std::string& runtime, const OciArgs& args);

// The same decision from the bundle path alone (what `state` reported).
bool bundle_is_krun(const std::string& bundle);

}  // namespace krunlet::oci
