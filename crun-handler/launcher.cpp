// krunlet-launch: the process a krun container starts (as its pid 1, inside
// the container, after pivot_root). It does what crun's krun handler does
// there (DESIGN.md §3, crun >= 1.21 order): load libkrun.so.1, create a
// context, set the log level, serve "/" (the container's rootfs) as the
// guest's root, size the VM, and boot it. The workload itself comes from
// /.krun_config.json, which the guest init reads; krun wrote it there.
//
// krun (bundle_rewrite.cpp) starts it through its own ELF interpreter:
//   /.krunlet/lib/ld-linux-x86-64.so.2 --library-path /.krunlet/lib
//       /.krunlet/bin/krunlet-launch --log-level N [--cpus N] [--ram-mib N]
// so neither it nor libkrun.so.1 needs anything from the container's image.
#include <dlfcn.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace {

constexpr int kInitFailed = 125;  // the exit code of a krun container whose VM could not start
constexpr unsigned kMaxVcpus = 16;
constexpr unsigned kDefaultVcpus = 1;    // the library's defaults (lib/vmm/vm_config.h)
constexpr unsigned kDefaultRamMib = 512;

struct Options {
    unsigned log_level = 1;
    std::optional<unsigned> cpus;
    std::optional<uint32_t> ram_mib;
    // From /.krun_vm.json: a kernel inside the container (an ELF vmlinux, the
    // format krun_set_kernel takes) and its extra command line.
    std::string kernel_path;
    std::string kernel_cmdline;
};

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "krunlet-launch: %s\n", msg.c_str());
    std::exit(kInitFailed);
}

unsigned long number(const char* opt, const char* s, unsigned long max) {
    char* end = nullptr;
    errno = 0;
    unsigned long v = std::strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v > max)
        die(std::string(opt) + " " + s + ": expected a whole number up to " + std::to_string(max));
    return v;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) die("option " + a + " needs a value (usage: krunlet-launch [--log-level N] "
                               "[--cpus N] [--ram-mib N])");
        const char* v = argv[++i];
        if (a == "--log-level") o.log_level = static_cast<unsigned>(number("--log-level", v, 5));
        else if (a == "--cpus") o.cpus = static_cast<unsigned>(number("--cpus", v, kMaxVcpus));
        else if (a == "--ram-mib") o.ram_mib = static_cast<uint32_t>(number("--ram-mib", v, UINT32_MAX));
        else die("unknown option " + a + " (krunlet-launch is started by krun, not by hand)");
    }
    return o;
}

// /.krun_vm.json (optional, user-written): cpus and ram_mib, used where the
// annotations said nothing, as crun does.
void read_vm_json(Options& o) {
    std::ifstream in("/.krun_vm.json");
    if (!in) return;
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) die("/.krun_vm.json is not a JSON object; fix or remove it");
    auto cpus = j.find("cpus");
    if (!o.cpus && cpus != j.end()) {
        if (!cpus->is_number_unsigned() || cpus->get<uint64_t>() < 1 || cpus->get<uint64_t>() > kMaxVcpus)
            die("/.krun_vm.json: cpus must be a number from 1 to 16");
        o.cpus = static_cast<unsigned>(cpus->get<uint64_t>());
    }
    auto ram = j.find("ram_mib");
    if (!o.ram_mib && ram != j.end()) {
        if (!ram->is_number_unsigned() || ram->get<uint64_t>() > UINT32_MAX)
            die("/.krun_vm.json: ram_mib must be a positive number of MiB");
        if (ram->get<uint64_t>() > 128) o.ram_mib = static_cast<uint32_t>(ram->get<uint64_t>());
    }
    for (auto [key, out] : {std::pair{"kernel_path", &o.kernel_path}, std::pair{"kernel_cmdline", &o.kernel_cmdline}}) {
        auto it = j.find(key);
        if (it == j.end()) continue;
        if (!it->is_string()) die(std::string("/.krun_vm.json: ") + key + " must be a string");
        *out = it->get<std::string>();
    }
    if (o.kernel_path.empty() && !o.kernel_cmdline.empty())
        die("/.krun_vm.json: kernel_cmdline needs kernel_path (the built-in kernel keeps krunlet's command line)");
}

template <class F>
F symbol(void* lib, const char* name) {
    void* p = ::dlsym(lib, name);
    if (p == nullptr) die(std::string("libkrun.so.1 has no ") + name + ": it is not a usable libkrun");
    return reinterpret_cast<F>(p);
}

void check(int32_t rc, const char* what) {
    if (rc < 0) die(std::string(what) + " failed: " + std::strerror(-rc));
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    read_vm_json(o);

    void* lib = ::dlopen("libkrun.so.1", RTLD_NOW);
    if (lib == nullptr) {
        const char* e = ::dlerror();
        die(std::string("cannot load libkrun.so.1: ") + (e ? e : "unknown error") +
            " (krun puts it in /.krunlet/lib; was the container created by krun?)");
    }
    auto set_log_level = symbol<int32_t (*)(uint32_t)>(lib, "krun_set_log_level");
    auto create_ctx = symbol<int32_t (*)()>(lib, "krun_create_ctx");
    auto set_root = symbol<int32_t (*)(uint32_t, const char*)>(lib, "krun_set_root");
    auto set_vm_config = symbol<int32_t (*)(uint32_t, uint8_t, uint32_t)>(lib, "krun_set_vm_config");
    auto start_enter = symbol<int32_t (*)(uint32_t)>(lib, "krun_start_enter");

    int32_t ctx = create_ctx();
    check(ctx, "krun_create_ctx");
    check(set_log_level(o.log_level), "krun_set_log_level");
    auto id = static_cast<uint32_t>(ctx);
    check(set_root(id, "/"), "krun_set_root(\"/\")");
    if (o.cpus || o.ram_mib)
        check(set_vm_config(id, static_cast<uint8_t>(o.cpus.value_or(kDefaultVcpus)),
                            o.ram_mib.value_or(kDefaultRamMib)),
              "krun_set_vm_config");
    if (!o.kernel_path.empty()) {
        // Looked up only when used: a library without it still boots every other container.
        auto set_kernel = symbol<int32_t (*)(uint32_t, const char*, uint32_t, const char*, const char*)>(
            lib, "krun_set_kernel");
        check(set_kernel(id, o.kernel_path.c_str(), /*KRUN_KERNEL_FORMAT_ELF*/ 1, nullptr,
                         o.kernel_cmdline.empty() ? nullptr : o.kernel_cmdline.c_str()),
              "krun_set_kernel (kernel_path in /.krun_vm.json)");
    }
    // On success this never returns: the process exits with the workload's code.
    int32_t rc = start_enter(id);
    die(std::string("the microVM did not start: ") + std::strerror(rc < 0 ? -rc : EIO) +
        " (libkrun's own message above says why)");
}
