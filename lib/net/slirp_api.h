// libslirp, loaded on first use. Most VMs have no slirp network (--net none,
// passt, or crun's own setup), yet linking libslirp.so.0 made every start load
// and relocate it and glib behind it: about 0.5-0.8 ms before main()
// (docs/performance.md). So libkrun.so.1 does not link it; the slirp backend
// asks for this table, which dlopen()s the library once per process.
#pragma once

#include <libslirp.h>

#include "base/result.h"

namespace krunlet::net {

// The libslirp functions the backend calls, with their own signatures.
struct SlirpApi {
    decltype(&::slirp_new) new_slirp;
    decltype(&::slirp_cleanup) cleanup;
    decltype(&::slirp_add_hostfwd) add_hostfwd;
    decltype(&::slirp_remove_hostfwd) remove_hostfwd;
    decltype(&::slirp_input) input;
    decltype(&::slirp_pollfds_fill) pollfds_fill;
    decltype(&::slirp_pollfds_poll) pollfds_poll;
    decltype(&::slirp_handle_timer) handle_timer;
};

// The loaded table, or an error that names the package when libslirp.so.0 or
// one of its functions is missing. Thread-safe; the first call loads it (call
// it before a thread's seccomp filter is installed: the filters allow no
// openat of libraries).
Result<const SlirpApi*> slirp_api();

}  // namespace krunlet::net
