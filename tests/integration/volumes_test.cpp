// Volumes (--volume, krun_add_virtiofs3 + krunlet_add_virtiofs_mount, the
// virtiofs entries of /.krun_config.json) and the virtio-fs cache knobs, in
// real microVMs. Boots are slow in the KVM test host, so one boot checks all
// the volume behaviour, a second one the "never" cache policy, a third the
// failure of a mount; the rest needs no boot.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vm_runner.h"

using krunlet::test::krunlet_run;
using krunlet::test::run_process;
using krunlet::test::RunResult;
using krunlet::test::ScratchRootfs;

namespace {

#define VOL_RUN_INFO(r) INFO("status=" << (r).status << "\nstdout:\n" << (r).out << "\nstderr:\n" << (r).err)

// A host directory to share, under the build tree (which the KVM test host
// sees at the same path).
class HostDir {
public:
    HostDir() {
        std::string base = std::string(KRUNLET_BUILD_DIR) + "/test-rootfs";
        ::mkdir(base.c_str(), 0755);
        std::string tmpl = base + "/vol-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
        path_ = tmpl;
    }
    ~HostDir() { run_process({"/bin/rm", "-rf", path_}); }
    HostDir(const HostDir&) = delete;
    HostDir& operator=(const HostDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& rel) const { return path_ + "/" + rel; }
    void write(const std::string& rel, const std::string& content) const {
        std::ofstream(file(rel), std::ios::binary) << content;
    }
    std::string read(const std::string& rel) const {
        std::ifstream f(file(rel), std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }
    std::vector<std::string> names() const {
        auto r = run_process({"/bin/ls", "-A", path_});
        std::vector<std::string> out;
        std::istringstream in(r.out);
        for (std::string line; std::getline(in, line);) out.push_back(line);
        return out;
    }

private:
    std::string path_;
};

bool exists(const std::string& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0;
}
bool is_dir(const std::string& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Sets environment variables for the krunlet child; the KRUNLET_FS_* knobs start unset so that the caller's
// environment (which the KVM test host passes on) cannot change a result.
class EnvGuard {
public:
    explicit EnvGuard(std::initializer_list<std::pair<const char*, const char*>> vars) {
        std::map<std::string, std::optional<std::string>> all = {
            {"KRUNLET_FS_CACHE", std::nullopt},
            {"KRUNLET_FS_ENTRY_TIMEOUT", std::nullopt},
            {"KRUNLET_FS_ATTR_TIMEOUT", std::nullopt}};
        for (const auto& [k, v] : vars) all[k] = std::string(v);
        for (const auto& [k, v] : all) {
            const char* old = std::getenv(k.c_str());
            saved_[k] = old ? std::optional<std::string>(old) : std::nullopt;
            set(k, v);
        }
    }
    ~EnvGuard() {
        for (const auto& [k, v] : saved_) set(k, v);
    }
    EnvGuard(const EnvGuard&) = delete;
    EnvGuard& operator=(const EnvGuard&) = delete;

private:
    static void set(const std::string& k, const std::optional<std::string>& v) {
        if (v)
            ::setenv(k.c_str(), v->c_str(), 1);
        else
            ::unsetenv(k.c_str());
    }
    std::map<std::string, std::optional<std::string>> saved_;
};

// The host side of the cache checks: once the guest has written
// `guest-ready` into the share, change three files behind its back (same-size
// overwrite, an append, a new file) and then write `host-changed`, which the
// guest waits for. Bounded: it gives up after `limit`, or when told to stop.
class HostChanger {
public:
    HostChanger(const HostDir& dir, std::chrono::seconds limit)
        : thread_([this, &dir, limit] {
              auto deadline = std::chrono::steady_clock::now() + limit;
              while (!exists(dir.file("guest-ready"))) {
                  if (stop_.load() || std::chrono::steady_clock::now() > deadline) return;
                  std::this_thread::sleep_for(std::chrono::milliseconds(20));
              }
              int fd = ::open(dir.file("cache.txt").c_str(), O_WRONLY | O_CLOEXEC);  // same inode, no truncation
              bool ok = fd >= 0 && ::pwrite(fd, "CCCCDDDD", 8, 0) == 8;
              if (fd >= 0) ::close(fd);
              std::ofstream(dir.file("grow.txt"), std::ios::app) << "5678";
              dir.write("late", "");
              dir.write("host-changed", "");
              changed_.store(ok);
          }) {}
    ~HostChanger() { finish(); }
    void finish() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
    }
    bool changed() const { return changed_.load(); }

private:
    std::atomic<bool> stop_{false};
    std::atomic<bool> changed_{false};
    std::thread thread_;
};

// The guest half: prime the caches, say ready, wait (bounded, 60 s) for the
// host's change, then read again. Prints key=value lines.
std::string cache_probe(const std::string& dir) {
    return "exec 3< " + dir + "/cache.txt\n"
           "echo \"c1=$(dd bs=4 count=1 <&3 2>/dev/null)\"\n"
           "echo \"size1=$(stat -c %s " + dir + "/grow.txt)\"\n"
           "test -e " + dir + "/late; echo \"late1=$?\"\n"
           "touch " + dir + "/guest-ready\n"
           "i=0; while [ ! -e " + dir + "/host-changed ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
           "echo \"waited=$i\"\n"
           // Through the descriptor opened before the change: no reopen.
           "echo \"c2=$(dd bs=4 count=1 <&3 2>/dev/null)\"\n"
           "test -e " + dir + "/late; echo \"late2=$?\"\n"
           "echo \"size2=$(stat -c %s " + dir + "/grow.txt)\"\n"
           // A fresh open.
           "echo \"c3=$(cat " + dir + "/cache.txt)\"\n";
}

void seed_cache_files(const HostDir& d) {
    d.write("cache.txt", "AAAABBBB");
    d.write("grow.txt", "1234");
}

// The value of "key=" on its own line of the guest's output.
std::string value(const std::string& out, const std::string& key) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
    }
    return "<" + key + " missing>";
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("volumes: rw and :ro volumes, a new mount point, a .krun_config.json virtiofs entry, auto cache") {
    ScratchRootfs fs;
    HostDir rw, ro, fresh;
    rw.write("in.txt", "from the host\n");
    seed_cache_files(rw);
    ro.write("keep.txt", "original\n");
    REQUIRE_FALSE(exists(fs.path() + "/mnt"));
    // The config mounts the :ro volume's share (tag krunlet-vol1) a second
    // time, without "ro": the guest's mount is read-write, so a refused write
    // there is the host's EROFS, not the guest kernel's.
    nlohmann::json cfg = {{"ociVersion", "1.0.0"},
                          {"mounts",
                           {{{"type", "proc"}, {"source", "proc"}, {"destination", "/proc"}},
                            {{"type", "virtiofs"}, {"source", "krunlet-vol1"}, {"destination", "/cfg/ro-share"}}}}};
    fs.write_file(".krun_config.json", cfg.dump());

    std::string script =
        "echo 'written by the guest' > /vol/rw/out.txt; echo \"rw_write=$?\"\n"
        "echo \"rw_read=$(cat /vol/rw/in.txt)\"\n"
        "echo \"rw_opts=$(awk '$2==\"/vol/rw\" {print $1, $3, $4}' /proc/mounts)\"\n"
        "echo changed 2>/tmp/e > /vol/ro/keep.txt; echo \"ro_write=$? $(cat /tmp/e)\"\n"
        "touch /vol/ro/new 2>/tmp/e; echo \"ro_create=$? $(cat /tmp/e)\"\n"
        "echo \"ro_read=$(cat /vol/ro/keep.txt)\"\n"
        "echo \"ro_opts=$(awk '$2==\"/vol/ro\" {print $1, $3, $4}' /proc/mounts)\"\n"
        "echo deep > /mnt/new/deep/made.txt; echo \"deep_write=$?\"\n"
        "echo \"deep_opts=$(awk '$2==\"/mnt/new/deep\" {print $1, $3}' /proc/mounts)\"\n"
        "echo \"cfg_read=$(cat /cfg/ro-share/keep.txt)\"\n"
        "echo \"cfg_opts=$(awk '$2==\"/cfg/ro-share\" {print $1, $3, $4}' /proc/mounts)\"\n"
        "echo x 2>/tmp/e > /cfg/ro-share/new.txt; echo \"cfg_write=$? $(cat /tmp/e)\"\n"
        "mkdir /cfg/ro-share/d 2>/tmp/e; echo \"cfg_mkdir=$? $(cat /tmp/e)\"\n" +
        cache_probe("/vol/rw");

    // auto, with the entry timeout from the environment and the attribute
    // timeout from the flag, both 0: names and sizes are fresh at once, file
    // data after a reopen.
    EnvGuard env({{"KRUNLET_FS_ENTRY_TIMEOUT", "0"}});
    HostChanger changer(rw, std::chrono::seconds(200));
    auto r = krunlet_run(fs.path(),
                         {"--volume", rw.path() + ":/vol/rw", "--volume", ro.path() + ":/vol/ro:ro", "-v",
                          fresh.path() + ":/mnt/new/deep", "--fs-attr-timeout", "0"},
                         {"/bin/sh", "-c", script}, 240);
    changer.finish();
    VOL_RUN_INFO(r);
    REQUIRE(r.status == 0);

    // A read-write volume: the guest reads the host's file, and what it
    // writes is on the host after the VM is gone, not in the rootfs.
    CHECK(value(r.out, "rw_write") == "0");
    CHECK(value(r.out, "rw_read") == "from the host");
    CHECK(value(r.out, "rw_opts").rfind("krunlet-vol0 virtiofs rw", 0) == 0);
    CHECK(rw.read("out.txt") == "written by the guest\n");
    CHECK_FALSE(exists(fs.path() + "/vol/rw/out.txt"));

    // :ro: mounted read-only in the guest; writes fail with EROFS.
    CHECK(value(r.out, "ro_write").rfind("1 ", 0) == 0);
    CHECK(contains(value(r.out, "ro_write"), "Read-only file system"));
    CHECK(value(r.out, "ro_create").rfind("1 ", 0) == 0);
    CHECK(contains(value(r.out, "ro_create"), "Read-only file system"));
    CHECK(value(r.out, "ro_read") == "original");
    CHECK(value(r.out, "ro_opts").rfind("krunlet-vol1 virtiofs ro", 0) == 0);

    // The same share mounted read-write by the config entry: the host refuses.
    CHECK(value(r.out, "cfg_read") == "original");
    CHECK(value(r.out, "cfg_opts").rfind("krunlet-vol1 virtiofs rw", 0) == 0);
    CHECK(value(r.out, "cfg_write").rfind("1 ", 0) == 0);
    CHECK(contains(value(r.out, "cfg_write"), "Read-only file system"));
    CHECK(value(r.out, "cfg_mkdir").rfind("1 ", 0) == 0);
    CHECK(contains(value(r.out, "cfg_mkdir"), "Read-only file system"));
    // ... and the host directory is exactly as it was.
    CHECK(ro.names() == std::vector<std::string>{"keep.txt"});
    CHECK(ro.read("keep.txt") == "original\n");

    // A mount point that did not exist was made inside the rootfs.
    CHECK(value(r.out, "deep_write") == "0");
    CHECK(value(r.out, "deep_opts") == "krunlet-vol2 virtiofs");
    CHECK(fresh.read("made.txt") == "deep\n");
    CHECK(is_dir(fs.path() + "/mnt/new/deep"));
    CHECK_FALSE(exists(fs.path() + "/mnt/new/deep/made.txt"));
    CHECK(is_dir(fs.path() + "/cfg/ro-share"));

    // Cache, auto: the host changed files while the guest ran.
    REQUIRE(changer.changed());
    CHECK(value(r.out, "c1") == "AAAA");
    CHECK(value(r.out, "size1") == "4");
    CHECK(value(r.out, "late1") == "1");
    CHECK(value(r.out, "late2") == "0");  // entry timeout 0: no negative caching
    CHECK(value(r.out, "size2") == "8");  // attribute timeout 0
    CHECK(value(r.out, "c3") == "CCCCDDDD");  // close-to-open
    MESSAGE("auto, read through the descriptor opened before the change: " << value(r.out, "c2")
            << " (BBBB = page cache kept until the next open); the guest polled " << value(r.out, "waited")
            << " x 50 ms");
}

TEST_CASE("volumes: --fs-cache never shows host changes at once, and beats KRUNLET_FS_CACHE") {
    ScratchRootfs fs;
    HostDir c;
    seed_cache_files(c);
    // "always" from the environment would keep the stale data, name and size
    // for a day: the flag must win.
    EnvGuard env({{"KRUNLET_FS_CACHE", "always"}});
    HostChanger changer(c, std::chrono::seconds(200));
    auto r = krunlet_run(fs.path(), {"--fs-cache", "never", "--volume", c.path() + ":/vol/c"},
                         {"/bin/sh", "-c", cache_probe("/vol/c")}, 240);
    changer.finish();
    VOL_RUN_INFO(r);
    REQUIRE(r.status == 0);
    REQUIRE(changer.changed());
    CHECK(value(r.out, "c1") == "AAAA");
    CHECK(value(r.out, "size1") == "4");
    CHECK(value(r.out, "late1") == "1");
    // No reopen: the same descriptor reads the host's new bytes.
    CHECK(value(r.out, "c2") == "DDDD");
    CHECK(value(r.out, "late2") == "0");
    CHECK(value(r.out, "size2") == "8");
    CHECK(value(r.out, "c3") == "CCCCDDDD");
}

TEST_CASE("volumes: a share init cannot mount ends the run with 125, naming the tag and the path") {
    ScratchRootfs fs;
    nlohmann::json cfg = {
        {"mounts", {{{"type", "virtiofs"}, {"source", "no-such-tag"}, {"destination", "/missing/here"}}}}};
    fs.write_file(".krun_config.json", cfg.dump());
    EnvGuard env({});
    auto r = krunlet_run(fs.path(), {}, {"/bin/echo", "the workload ran"}, 120);
    VOL_RUN_INFO(r);
    CHECK(r.status == 125);
    std::string all = r.out + r.err;
    CHECK(contains(all, "tag 'no-such-tag' on /missing/here"));
    CHECK_FALSE(contains(all, "the workload ran"));
}

TEST_CASE("volumes: a bad --volume or KRUNLET_FS_CACHE fails before any boot, naming the culprit") {
    HostDir root;  // any directory: nothing boots
    {
        EnvGuard env({});
        auto r = krunlet_run(root.path(), {"--volume", "/no/such/dir:/data"}, {"/bin/true"}, 60);
        VOL_RUN_INFO(r);
        CHECK(r.status == 125);
        CHECK(contains(r.err, "--volume /no/such/dir:/data"));
        CHECK(contains(r.err, "HOST must be an existing directory"));
        auto rel = krunlet_run(root.path(), {"--volume", root.path() + ":data"}, {"/bin/true"}, 60);
        CHECK(rel.status == 125);
        CHECK(contains(rel.err, "must be absolute"));
    }
    {
        EnvGuard env({{"KRUNLET_FS_CACHE", "sometimes"}});
        auto r = krunlet_run(root.path(), {}, {"/bin/true"}, 60);
        VOL_RUN_INFO(r);
        CHECK(r.status == 125);
        CHECK(contains(r.err, "KRUNLET_FS_CACHE=sometimes: use never, auto or always"));
    }
    {
        EnvGuard env({{"KRUNLET_FS_ATTR_TIMEOUT", "soon"}});
        auto r = krunlet_run(root.path(), {}, {"/bin/true"}, 60);
        CHECK(r.status == 125);
        CHECK(contains(r.err, "KRUNLET_FS_ATTR_TIMEOUT=soon is not a number of seconds"));
    }
}
