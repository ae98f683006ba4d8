// libkrun.so.1 reached the way crun's krun handler reaches it: dlopen of the
// built library, then dlsym of each call. Only for the child of a fork that
// plays the handler: any failure _exits with a code the test reports
// (200 dlopen, 201 a missing symbol, 202 a call that failed).
#pragma once

#include <dlfcn.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>

namespace krunlet::test {

struct LibkrunDl {
    int32_t (*set_log_level)(uint32_t);
    int32_t (*create_ctx)();
    int32_t (*set_vm_config)(uint32_t, uint8_t, uint32_t);
    int32_t (*set_root)(uint32_t, const char*);
    int32_t (*add_virtiofs2)(uint32_t, const char*, const char*, uint64_t);
    int32_t (*set_workdir)(uint32_t, const char*);
    int32_t (*set_exec)(uint32_t, const char*, const char* const*, const char* const*);
    int32_t (*set_net)(uint32_t, const char*);  // krunlet_set_net (ours)
    int32_t (*setuid)(uint32_t, uid_t);
    int32_t (*setgid)(uint32_t, gid_t);
    int32_t (*start_enter)(uint32_t);

    static LibkrunDl open_or_exit() {
        std::string lib = std::string(KRUNLET_BUILD_DIR) + "/lib/libkrun.so.1";
        void* h = ::dlopen(lib.c_str(), RTLD_NOW);
        if (h == nullptr) {
            std::fprintf(stderr, "test: dlopen %s: %s\n", lib.c_str(), ::dlerror());
            ::_exit(200);
        }
        auto sym = [h](auto& fn, const char* name) {
            void* p = ::dlsym(h, name);
            if (p == nullptr) {
                std::fprintf(stderr, "test: libkrun.so.1 lacks %s\n", name);
                ::_exit(201);
            }
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
        };
        LibkrunDl k{};
        sym(k.set_log_level, "krun_set_log_level");
        sym(k.create_ctx, "krun_create_ctx");
        sym(k.set_vm_config, "krun_set_vm_config");
        sym(k.set_root, "krun_set_root");
        sym(k.add_virtiofs2, "krun_add_virtiofs2");
        sym(k.set_workdir, "krun_set_workdir");
        sym(k.set_exec, "krun_set_exec");
        sym(k.set_net, "krunlet_set_net");
        sym(k.setuid, "krun_setuid");
        sym(k.setgid, "krun_setgid");
        sym(k.start_enter, "krun_start_enter");
        return k;
    }
};

// A call's result, or _exit(202) naming the call when it failed (-errno).
inline uint32_t check_or_exit(int32_t rc, const char* what) {
    if (rc < 0) {
        std::fprintf(stderr, "test: %s: %s\n", what, std::strerror(-rc));
        ::_exit(202);
    }
    return uint32_t(rc);
}

}  // namespace krunlet::test
