// The libkrun C ABI's argument checking, through the real libkrun.so.1.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>

#include "libkrun.h"

TEST_CASE("contexts: create, configure, free") {
    int32_t ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    auto id = uint32_t(ctx);
    CHECK(krun_set_vm_config(id, 2, 256) == 0);
    CHECK(krun_set_vm_config(id, 0, 256) == -EINVAL);
    CHECK(krun_set_vm_config(id, 17, 256) == -EINVAL);
    CHECK(krun_set_vm_config(id, 1, 4) == -EINVAL);
    CHECK(krun_set_root(id, "/") == 0);
    CHECK(krun_set_root(id, "/no/such/dir") == -ENOENT);
    CHECK(krun_set_root(id, "/etc/passwd") == -ENOTDIR);
    CHECK(krun_set_root(id, nullptr) == -EINVAL);
    CHECK(krun_add_virtiofs(id, "data", "/tmp") == 0);
    CHECK(krun_add_virtiofs(id, "", "/tmp") == -EINVAL);
    CHECK(krun_add_virtiofs(id, std::string(37, 't').c_str(), "/tmp") == -EINVAL);
    CHECK(krun_add_virtiofs2(id, KRUN_FS_ROOT_TAG, "/", 512u << 20) == 0);
    CHECK(krun_add_virtiofs3(id, "ro", "/usr", 0, true) == 0);

    const char* argv[] = {"-c", "true", nullptr};
    const char* envp[] = {"A=1", nullptr};
    CHECK(krun_set_exec(id, "/bin/sh", argv, envp) == 0);
    CHECK(krun_set_exec(id, nullptr, argv, envp) == -EINVAL);
    CHECK(krun_set_exec(id, "", argv, envp) == -EINVAL);
    const char* bad_env[] = {"NOEQUALS", nullptr};
    CHECK(krun_set_env(id, bad_env) == -EINVAL);
    CHECK(krun_set_env(id, envp) == 0);
    CHECK(krun_set_workdir(id, "/tmp") == 0);
    CHECK(krun_set_workdir(id, nullptr) == -EINVAL);

    const char* good_rl[] = {"7=1024:4096", "6=10:20", nullptr};
    CHECK(krun_set_rlimits(id, good_rl) == 0);
    for (const char* bad : {"7=1024", "=1:2", "x=1:2", "7=a:2", "7=1:", "7"}) {
        const char* rl[] = {bad, nullptr};
        INFO(bad);
        CHECK(krun_set_rlimits(id, rl) == -EINVAL);
    }
    char out[] = "/tmp/krunlet-capi-XXXXXX";
    int fd = ::mkstemp(out);
    REQUIRE(fd >= 0);
    ::close(fd);
    CHECK(krun_set_console_output(id, out) == 0);
    CHECK(krun_set_console_output(id, "/no/such/dir/file") == -ENOENT);
    ::unlink(out);

    CHECK(krun_free_ctx(id) == 0);
    CHECK(krun_free_ctx(id) == -ENOENT);
    CHECK(krun_set_vm_config(id, 1, 256) == -ENOENT);
    CHECK(krun_start_enter(id) == -ENOENT);
}

TEST_CASE("log level and limits") {
    CHECK(krun_set_log_level(0) == 0);
    CHECK(krun_set_log_level(6) == -EINVAL);
    CHECK(krun_get_max_vcpus() == 16);
    CHECK(krun_set_log_level(1) == 0);
}

TEST_CASE("start_enter without a root fails with -EINVAL and does not exit") {
    CHECK(krun_set_log_level(0) == 0);
    int32_t ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    CHECK(krun_start_enter(uint32_t(ctx)) == -EINVAL);
    CHECK(krun_set_log_level(1) == 0);
}

namespace {

// Runs fn with stderr going to a file, and returns what was written.
template <class Fn>
std::string capture_stderr(Fn&& fn) {
    char path[] = "/tmp/krunlet-capi-err-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    std::fflush(stderr);
    int saved = ::dup(2);
    ::dup2(fd, 2);
    fn();
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    std::string out;
    char buf[4096];
    ssize_t n;
    ::lseek(fd, 0, SEEK_SET);
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
    ::close(fd);
    ::unlink(path);
    return out;
}

uint32_t ctx_with_root() {
    int32_t ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    REQUIRE(krun_set_root(uint32_t(ctx), "/") == 0);
    return uint32_t(ctx);
}

}  // namespace

TEST_CASE("krunlet_add_virtiofs_mount: argument checks") {
    uint32_t id = ctx_with_root();
    CHECK(krun_add_virtiofs3(id, "krunlet-vol0", "/tmp", 0, true) == 0);
    CHECK(krunlet_add_virtiofs_mount(id, "krunlet-vol0", "/data", true) == 0);
    CHECK(krunlet_add_virtiofs_mount(id, "krunlet-vol0", "/again", false) == 0);
    CHECK(krun_set_log_level(0) == 0);
    CHECK(krunlet_add_virtiofs_mount(id, nullptr, "/d", false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(id, "t", nullptr, false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(id, "", "/d", false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(id, "a b", "/d", false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(id, "t", "relative", false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(id, "t", "/", false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(id, "t", "/a/../b", false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(id, KRUN_FS_ROOT_TAG, "/d", false) == -EINVAL);
    CHECK(krunlet_add_virtiofs_mount(9999, "t", "/d", false) == -ENOENT);
    // 64 mounts at most (two are in already).
    for (int i = 0; i < 62; ++i)
        CHECK(krunlet_add_virtiofs_mount(id, "krunlet-vol0", ("/m" + std::to_string(i)).c_str(), false) == 0);
    CHECK(krunlet_add_virtiofs_mount(id, "krunlet-vol0", "/one-more", false) == -E2BIG);
    CHECK(krun_set_log_level(1) == 0);
    CHECK(krun_free_ctx(id) == 0);
}

TEST_CASE("shares: at most 16, the root included") {
    uint32_t id = ctx_with_root();
    CHECK(krun_set_log_level(0) == 0);
    for (int i = 1; i < 16; ++i) CHECK(krun_add_virtiofs(id, ("s" + std::to_string(i)).c_str(), "/tmp") == 0);
    CHECK(krun_add_virtiofs(id, "s1", "/usr") == 0);  // same tag: replaced, not added
    CHECK(krun_add_virtiofs(id, "s16", "/tmp") == -ENOSPC);
    CHECK(krun_set_log_level(1) == 0);
    CHECK(krun_free_ctx(id) == 0);
}

TEST_CASE("krunlet_set_fs_cache: words and seconds, NULL leaves a knob alone") {
    uint32_t id = ctx_with_root();
    CHECK(krunlet_set_fs_cache(id, "never", nullptr, nullptr) == 0);
    CHECK(krunlet_set_fs_cache(id, nullptr, "0.5", "0") == 0);
    CHECK(krunlet_set_fs_cache(id, nullptr, nullptr, nullptr) == 0);
    std::string err = capture_stderr([&] { CHECK(krunlet_set_fs_cache(id, "sometimes", nullptr, nullptr) == -EINVAL); });
    CHECK(err.find("krunlet_set_fs_cache policy sometimes: use never, auto or always") != std::string::npos);
    CHECK(krun_set_log_level(0) == 0);
    CHECK(krunlet_set_fs_cache(id, nullptr, "-1", nullptr) == -EINVAL);
    CHECK(krunlet_set_fs_cache(id, nullptr, nullptr, "forever") == -EINVAL);
    CHECK(krunlet_set_fs_cache(9999, "never", nullptr, nullptr) == -ENOENT);
    CHECK(krun_set_log_level(1) == 0);
    CHECK(krun_free_ctx(id) == 0);
}

TEST_CASE("krun_start_enter refuses a bad KRUNLET_FS_* variable, naming it, and does not exit") {
    for (auto [name, value, expect] :
         {std::tuple{"KRUNLET_FS_CACHE", "bogus", "KRUNLET_FS_CACHE=bogus: use never, auto or always"},
          std::tuple{"KRUNLET_FS_ENTRY_TIMEOUT", "soon", "KRUNLET_FS_ENTRY_TIMEOUT=soon is not a number of seconds"},
          std::tuple{"KRUNLET_FS_ATTR_TIMEOUT", "-3", "KRUNLET_FS_ATTR_TIMEOUT=-3 is not a number of seconds"}}) {
        INFO(name);
        // Set only at start (inside the container, for crun): still read.
        uint32_t id = ctx_with_root();
        ::setenv(name, value, 1);
        std::string err = capture_stderr([&] { CHECK(krun_start_enter(id) == -EINVAL); });
        ::unsetenv(name);
        CHECK(err.find(expect) != std::string::npos);
    }
    // Set only when the context was created (crun >= 1.21 on the host).
    ::setenv("KRUNLET_FS_CACHE", "bogus", 1);
    uint32_t id = ctx_with_root();
    ::unsetenv("KRUNLET_FS_CACHE");
    std::string err = capture_stderr([&] { CHECK(krun_start_enter(id) == -EINVAL); });
    CHECK(err.find("KRUNLET_FS_CACHE=bogus") != std::string::npos);
}

TEST_CASE("krun_start_enter refuses a guest mount of a tag no share has") {
    uint32_t id = ctx_with_root();
    CHECK(krunlet_add_virtiofs_mount(id, "missing", "/data", false) == 0);
    std::string err = capture_stderr([&] { CHECK(krun_start_enter(id) == -EINVAL); });
    CHECK(err.find("no virtio-fs share has the tag 'missing'") != std::string::npos);
}

TEST_CASE("ports: krun_set_port_map, krun_add_vsock_port(2) and krunlet_set_net check their arguments") {
    int32_t ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    auto id = uint32_t(ctx);
    const char* good[] = {"8080:80", "1:65535", nullptr};
    CHECK(krun_set_port_map(id, good) == 0);
    for (const char* bad : {"8080", "0:80", "65536:80", "80:", ":80", "8080:80x", "a:b"}) {
        CAPTURE(bad);
        const char* map[] = {bad, nullptr};
        CHECK(krun_set_port_map(id, map) == -EINVAL);
    }
    CHECK(krun_add_vsock_port(id, 5000, "/tmp/a.sock") == 0);
    CHECK(krun_add_vsock_port(id, 5000, "/tmp/b.sock") == -EEXIST);       // the port is taken
    CHECK(krun_add_vsock_port2(id, 5000, "/tmp/c.sock", true) == 0);      // listening is another direction
    CHECK(krun_add_vsock_port2(id, 5001, "/tmp/a.sock", false) == -EEXIST);  // the path is taken
    CHECK(krun_add_vsock_port(id, 1024, "/tmp/d.sock") == -EINVAL);       // krunlet's control port
    CHECK(krun_add_vsock_port(id, 5002, "") == -EINVAL);
    CHECK(krun_add_vsock_port(id, 5002, std::string(200, 'x').c_str()) == -ENAMETOOLONG);
    CHECK(krunlet_set_net(id, "none") == 0);
    CHECK(krunlet_set_net(id, "tap") == -EINVAL);
    CHECK(krun_set_port_map(999999, good) == -ENOENT);
    CHECK(krun_free_ctx(id) == 0);
}

TEST_CASE("krun_add_net_unixstream: crun's call (fd, flags 2 then 0), paths, features and bad arguments") {
    int32_t ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    auto id = uint32_t(ctx);
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    uint8_t mac[6] = {0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee};

    // crun: NET_FLAG_DHCP_CLIENT first, refused; then without flags.
    CHECK(krun_add_net_unixstream(id, nullptr, sv[0], mac, COMPAT_NET_FEATURES, NET_FLAG_DHCP_CLIENT) == -EINVAL);
    CHECK(krun_add_net_unixstream(id, nullptr, sv[0], mac, COMPAT_NET_FEATURES, 0) == 0);
    // One network device per VM.
    CHECK(krun_add_net_unixstream(id, nullptr, sv[0], mac, COMPAT_NET_FEATURES, 0) == -EEXIST);
    // The context keeps its own copy: the caller may close its descriptor.
    ::close(sv[0]);
    CHECK(krun_free_ctx(id) == 0);
    // Freeing the context closed the copy: the peer now sees EOF.
    char c;
    CHECK(::read(sv[1], &c, 1) == 0);
    ::close(sv[1]);

    ctx = krun_create_ctx();
    REQUIRE(ctx >= 0);
    id = uint32_t(ctx);
    CHECK(krun_add_net_unixstream(id, nullptr, -1, mac, 0, 0) == -EINVAL);            // neither
    CHECK(krun_add_net_unixstream(id, "/tmp/p.sock", 0, mac, 0, 0) == -EINVAL);        // both
    CHECK(krun_add_net_unixstream(id, "", -1, mac, 0, 0) == -EINVAL);
    CHECK(krun_add_net_unixstream(id, std::string(200, 'x').c_str(), -1, mac, 0, 0) == -ENAMETOOLONG);
    CHECK(krun_add_net_unixstream(id, "/tmp/p.sock", -1, mac, 1u << 3, 0) == -EINVAL);  // unknown feature bit
    CHECK(krun_add_net_unixstream(id, "/tmp/p.sock", -1, mac, 0, NET_FLAG_VFKIT) == -EINVAL);
    CHECK(krun_add_net_unixstream(id, "/tmp/p.sock", -1, mac, 0, 1u << 5) == -EINVAL);  // unknown flag
    uint8_t multicast[6] = {0x01, 0, 0x5e, 0, 0, 1}, zero[6] = {};
    CHECK(krun_add_net_unixstream(id, "/tmp/p.sock", -1, multicast, 0, 0) == -EINVAL);
    CHECK(krun_add_net_unixstream(id, "/tmp/p.sock", -1, zero, 0, 0) == -EINVAL);
    CHECK(krun_add_net_unixstream(id, nullptr, 987654, mac, 0, 0) == -EBADF);
    int dg[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg) == 0);
    CHECK(krun_add_net_unixstream(id, nullptr, dg[0], mac, 0, 0) == -EINVAL);  // a datagram socket
    ::close(dg[0]);
    ::close(dg[1]);
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    CHECK(krun_add_net_unixstream(id, nullptr, p[0], mac, 0, 0) == -ENOTSOCK);
    ::close(p[0]);
    ::close(p[1]);
    // A path is connected only when the VM starts; NULL mac takes the default.
    CHECK(krun_add_net_unixstream(id, "/tmp/p.sock", -1, nullptr, NET_FEATURE_CSUM, 0) == 0);
    CHECK(krun_add_net_unixstream(999999, "/tmp/p.sock", -1, mac, 0, 0) == -ENOENT);
    CHECK(krun_free_ctx(id) == 0);
}

// ---- The drop-in contract with crun (issue 5) ----

namespace {

// Every symbol crun's krun handler (src/libcrun/handlers/krun.c, 1.8 .. 1.2x)
// looks up with dlsym, then what launchers (krunvm, muvm, podman machine) call.
constexpr const char* kCrunSymbols[] = {
    "krun_create_ctx", "krun_set_log_level", "krun_set_vm_config", "krun_set_root", "krun_add_virtiofs2",
    "krun_set_workdir", "krun_set_exec", "krun_start_enter", "krun_set_kernel", "krun_set_gpu_options",
    "krun_check_nested_virt", "krun_set_nested_virt", "krun_add_net_unixstream", "krun_set_root_disk",
    "krun_set_tee_config_file", "krun_set_console_output",
};
constexpr const char* kLauncherSymbols[] = {
    "krun_free_ctx", "krun_set_env", "krun_set_rlimits", "krun_set_port_map", "krun_add_vsock_port",
    "krun_add_vsock_port2", "krun_setuid", "krun_setgid", "krun_add_virtiofs", "krun_add_virtiofs3",
    "krun_init_log", "krun_has_feature", "krun_get_max_vcpus", "krun_set_gpu_options2", "krun_set_data_disk",
    "krun_split_irqchip", "krun_set_smbios_oem_strings", "krun_set_snd_device", "krun_get_shutdown_eventfd",
};

}  // namespace

TEST_CASE("dlopen(libkrun.so.1): every symbol crun and launchers look up resolves, and the kernel library comes along") {
    // The libkrun.so.1 this binary runs with: the one in the build tree.
    Dl_info info{};
    REQUIRE(::dladdr(reinterpret_cast<void*>(&krun_create_ctx), &info) != 0);
    std::string path = info.dli_fname;
    CHECK(path.size() >= 12);
    CHECK(path.substr(path.rfind('/') + 1).rfind("libkrun.so", 0) == 0);
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    REQUIRE_MESSAGE(h != nullptr, ::dlerror());
    // crun opens it by soname.
    void* by_soname = ::dlopen("libkrun.so.1", RTLD_NOW);
    REQUIRE_MESSAGE(by_soname != nullptr, ::dlerror());
    CHECK(by_soname == h);
    for (const char* name : kCrunSymbols) {
        CAPTURE(name);
        CHECK(::dlsym(h, name) != nullptr);
    }
    for (const char* name : kLauncherSymbols) {
        CAPTURE(name);
        CHECK(::dlsym(h, name) != nullptr);
    }
    // dlsym on a handle searches the library and its DT_NEEDED: the kernel
    // library is loaded with libkrun.so.1, before any call.
    CHECK(::dlsym(h, "krunlet_kernel_blob") != nullptr);
    // The VMM's internals stay private.
    CHECK(::dlsym(h, "_ZN7krunlet10KernelFile12open_defaultEv") == nullptr);
    ::dlclose(by_soname);
    ::dlclose(h);
}

TEST_CASE("unsupported calls: -ENOTSUP with one line naming what is missing; what krunlet does anyway is 0") {
    uint32_t id = ctx_with_root();
    const char* oem[] = {"a=b", nullptr};
    const char* none[] = {nullptr};
    std::string err = capture_stderr([&] {
        CHECK(krun_set_gpu_options(id, VIRGLRENDERER_VENUS | VIRGLRENDERER_NO_VIRGL) == -ENOTSUP);
        CHECK(krun_set_gpu_options2(id, VIRGLRENDERER_VENUS, 1u << 30) == -ENOTSUP);
        CHECK(krun_set_root_disk(id, "/disk.img") == -ENOTSUP);
        CHECK(krun_set_data_disk(id, "/data.img") == -ENOTSUP);
        CHECK(krun_set_tee_config_file(id, "/krun-sev.json") == -ENOTSUP);
        CHECK(krun_set_nested_virt(id, true) == -ENOTSUP);
        CHECK(krun_split_irqchip(id, true) == -ENOTSUP);
        CHECK(krun_set_smbios_oem_strings(id, oem) == -ENOTSUP);
        CHECK(krun_set_snd_device(id, true) == -ENOTSUP);
        CHECK(krun_get_shutdown_eventfd(id) == -ENOTSUP);
    });
    // One line per refused call, each naming the call.
    for (const char* call : {"krun_set_gpu_options:", "krun_set_gpu_options2:", "krun_set_root_disk:",
                             "krun_set_data_disk:", "krun_set_tee_config_file:", "krun_set_nested_virt:",
                             "krun_split_irqchip:", "krun_set_smbios_oem_strings:", "krun_set_snd_device:",
                             "krun_get_shutdown_eventfd:"}) {
        CAPTURE(call);
        CHECK(err.find(std::string("krunlet: ") + call + " not supported: ") != std::string::npos);
    }
    CHECK(std::count(err.begin(), err.end(), '\n') == 10);
    CHECK(err.find("virtio-gpu") != std::string::npos);
    CHECK(err.find("virtio-blk") != std::string::npos);
    // What krunlet does already.
    CHECK(krun_set_nested_virt(id, false) == 0);
    CHECK(krun_split_irqchip(id, false) == 0);
    CHECK(krun_set_snd_device(id, false) == 0);
    CHECK(krun_set_smbios_oem_strings(id, none) == 0);
    CHECK(krun_set_smbios_oem_strings(id, nullptr) == 0);
    // An unknown context is -ENOENT, before anything else.
    CHECK(krun_set_gpu_options(999999, 0) == -ENOENT);
    CHECK(krun_set_nested_virt(999999, false) == -ENOENT);
    CHECK(krun_get_shutdown_eventfd(999999) == -ENOENT);
    CHECK(krun_free_ctx(id) == 0);
}

TEST_CASE("queries: krun_check_nested_virt, krun_has_feature, krun_init_log") {
    CHECK(krun_check_nested_virt() == 0);  // a valid answer: not supported
    CHECK(krun_has_feature(KRUN_FEATURE_NET) == 1);
    CHECK(krun_has_feature(KRUN_FEATURE_INIT_BLOB) == 1);
    for (uint64_t f : {KRUN_FEATURE_BLK, KRUN_FEATURE_GPU, KRUN_FEATURE_INPUT, KRUN_FEATURE_TEE, KRUN_FEATURE_AMD_SEV,
                       KRUN_FEATURE_INTEL_TDX, KRUN_FEATURE_AWS_NITRO, KRUN_FEATURE_VIRGL_RESOURCE_MAP2}) {
        CAPTURE(f);
        CHECK(krun_has_feature(f) == 0);
    }
    CHECK(krun_has_feature(3) == -EINVAL);
    CHECK(krun_has_feature(12) == -EINVAL);
    CHECK(krun_has_feature(~uint64_t{0}) == -EINVAL);

    CHECK(krun_init_log(KRUN_LOG_TARGET_DEFAULT, KRUN_LOG_LEVEL_WARN, KRUN_LOG_STYLE_NEVER, KRUN_LOG_OPTION_NO_ENV) == 0);
    CHECK(krun_init_log(KRUN_LOG_TARGET_DEFAULT, 6, KRUN_LOG_STYLE_AUTO, 0) == -EINVAL);
    CHECK(krun_init_log(KRUN_LOG_TARGET_DEFAULT, 1, 3, 0) == -EINVAL);
    CHECK(krun_init_log(KRUN_LOG_TARGET_DEFAULT, 1, KRUN_LOG_STYLE_AUTO, 2) == -EINVAL);
    std::string err = capture_stderr([&] { CHECK(krun_init_log(2, 1, KRUN_LOG_STYLE_AUTO, 0) == -ENOTSUP); });
    CHECK(err.find("krun_init_log: not supported: logging to fd 2") != std::string::npos);
    // krun_init_log set the level: 0 silences the next refusal.
    CHECK(krun_init_log(KRUN_LOG_TARGET_DEFAULT, KRUN_LOG_LEVEL_OFF, KRUN_LOG_STYLE_AUTO, 0) == 0);
    err = capture_stderr([&] { CHECK(krun_init_log(5, 1, KRUN_LOG_STYLE_AUTO, 0) == -ENOTSUP); });
    CHECK(err.empty());
    CHECK(krun_set_log_level(1) == 0);
}

TEST_CASE("krun_set_kernel: ELF vmlinux only, no initramfs, the file opened at once") {
    uint32_t id = ctx_with_root();
    std::string err = capture_stderr([&] {
        CHECK(krun_set_kernel(id, "/boot/vmlinuz", KRUN_KERNEL_FORMAT_RAW, nullptr, nullptr) == -ENOTSUP);
        CHECK(krun_set_kernel(id, "/boot/vmlinuz", KRUN_KERNEL_FORMAT_IMAGE_GZ, nullptr, nullptr) == -ENOTSUP);
        CHECK(krun_set_kernel(id, "/proc/self/exe", KRUN_KERNEL_FORMAT_ELF, "/boot/initrd.img", nullptr) == -ENOTSUP);
    });
    CHECK(err.find("krun_set_kernel: kernel format 0 is not supported") != std::string::npos);
    CHECK(err.find("kernel format 4 is not supported") != std::string::npos);
    CHECK(err.find("an initramfs (/boot/initrd.img) is not supported") != std::string::npos);
    err = capture_stderr([&] {
        CHECK(krun_set_kernel(id, nullptr, KRUN_KERNEL_FORMAT_ELF, nullptr, nullptr) == -EINVAL);
        CHECK(krun_set_kernel(id, "", KRUN_KERNEL_FORMAT_ELF, nullptr, nullptr) == -EINVAL);
        CHECK(krun_set_kernel(id, "/no/such/vmlinux", KRUN_KERNEL_FORMAT_ELF, nullptr, nullptr) == -ENOENT);
        CHECK(krun_set_kernel(id, "/etc/passwd", KRUN_KERNEL_FORMAT_ELF, nullptr, nullptr) == -EINVAL);
    });
    CHECK(err.find("cannot open the guest kernel /no/such/vmlinux") != std::string::npos);
    CHECK(err.find("/etc/passwd cannot be booted: it is not an ELF file") != std::string::npos);
    CHECK(krun_set_kernel(999999, "/proc/self/exe", KRUN_KERNEL_FORMAT_ELF, nullptr, nullptr) == -ENOENT);
    // A 64-bit ELF file passes here (the ELF loader checks the rest at start);
    // an empty initramfs path means none.
    CHECK(krun_set_kernel(id, "/proc/self/exe", KRUN_KERNEL_FORMAT_ELF, "", "quiet") == 0);
    CHECK(krun_set_kernel(id, "/proc/self/exe", KRUN_KERNEL_FORMAT_ELF, nullptr, nullptr) == 0);
    CHECK(krun_free_ctx(id) == 0);
}

TEST_CASE("krun_create_ctx stays cheap (crun calls it for exec and update too)") {
    constexpr int kRounds = 500;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) {
        int32_t ctx = krun_create_ctx();
        REQUIRE(ctx >= 0);
        REQUIRE(krun_free_ctx(uint32_t(ctx)) == 0);
    }
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kRounds;
    MESSAGE("krun_create_ctx + krun_free_ctx: " << us << " us per pair (" << kRounds << " rounds)");
    // Copying or reading an 18 MB kernel would cost milliseconds.
    CHECK(us < 1000.0);
}
