#include "net/slirp_api.h"

#include <dlfcn.h>

#include <string>

namespace krunlet::net {

namespace {

// The soname Debian's libslirp0 installs (the ABI of libslirp 4.x).
constexpr const char* kSoname = "libslirp.so.0";

struct Loaded {
    SlirpApi api{};
    std::string error;  // empty when api is complete
};

template <class F>
bool bind(void* lib, const char* name, F& out, std::string& error) {
    out = reinterpret_cast<F>(::dlsym(lib, name));
    if (out == nullptr && error.empty())
        error = std::string(kSoname) + " has no " + name + ": install Debian's libslirp0 (4.7 or newer)";
    return out != nullptr;
}

Loaded load() {
    Loaded l;
    // RTLD_LOCAL: nothing else in the process sees slirp's or glib's symbols.
    // Never dlclose()d: the backend may outlive any owner we could give it.
    void* lib = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
        const char* why = ::dlerror();
        l.error = std::string("cannot load ") + kSoname + " for slirp networking (" + (why ? why : "?") +
                  "): apt-get install libslirp0, or run without it (--net none)";
        return l;
    }
    bind(lib, "slirp_new", l.api.new_slirp, l.error);
    bind(lib, "slirp_cleanup", l.api.cleanup, l.error);
    bind(lib, "slirp_add_hostfwd", l.api.add_hostfwd, l.error);
    bind(lib, "slirp_remove_hostfwd", l.api.remove_hostfwd, l.error);
    bind(lib, "slirp_input", l.api.input, l.error);
    bind(lib, "slirp_pollfds_fill", l.api.pollfds_fill, l.error);
    bind(lib, "slirp_pollfds_poll", l.api.pollfds_poll, l.error);
    bind(lib, "slirp_handle_timer", l.api.handle_timer, l.error);
    return l;
}

}  // namespace

Result<const SlirpApi*> slirp_api() {
    // Loaded once and never changed afterwards: a read-only table, not state.
    static const Loaded loaded = load();
    if (!loaded.error.empty()) return make_error(ELIBACC, loaded.error);
    return &loaded.api;
}

}  // namespace krunlet::net
