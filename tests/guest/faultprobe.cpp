// krunlet-faultprobe: the guest half of tests/integration/faults_test.cpp. Each mode drives
// the guest into one fault and reports, on stdout, only what it has verified, so the host
// side can hold the VMM to it:
//
//   eat STEP_MIB            touch memory STEP_MIB at a time until the OOM killer ends us;
//                           prints "ate N" after each step is really written to
//   append FILE COUNT       append COUNT fixed-size records to FILE, each written then
//                           fsync'ed; prints "ack N" only after record N's fsync returned
//   openmany DIR COUNT      create and hold open DIR/f0..f(COUNT-1) until open fails; prints
//                           how many were open and the errno, then closes and unlinks them
//                           and checks that a new file can be created, written and read back
//
// Plain POSIX, no C++ runtime state beyond stdio: it is linked static and runs from any
// rootfs. Output is unbuffered line by line (the host reads acknowledgements as they come).
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kRecordSize = 64;

// Record n (from 1): fixed width, so the host can find record n at offset (n-1)*64 and see a
// torn or shifted record at once. The filler depends on n, so a record in the wrong slot fails.
std::string record(unsigned n) {
    char head[32];
    int len = std::snprintf(head, sizeof head, "rec %08u ", n);
    std::string r(head, size_t(len));
    while (r.size() < kRecordSize - 1) r.push_back(char('a' + (n + r.size()) % 26));
    r.push_back('\n');
    return r;
}

int eat(long step_mib) {
    if (step_mib <= 0) return 2;
    const size_t step = size_t(step_mib) << 20;
    for (long total = step_mib;; total += step_mib) {
        // Never freed: the point is to keep growing until the kernel kills us.
        char* p = static_cast<char*>(std::malloc(step));
        if (p == nullptr) {
            std::printf("malloc-failed at %ld\n", total);
            return 3;
        }
        // Dirty every page, so the memory is really committed, not just reserved.
        std::memset(p, int(total & 0xff) | 1, step);
        std::printf("ate %ld\n", total);
    }
}

int append(const char* path, long count) {
    int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        std::printf("open-failed errno=%d\n", errno);
        return 3;
    }
    for (long n = 1; n <= count; ++n) {
        const std::string r = record(unsigned(n));
        ssize_t k = ::write(fd, r.data(), r.size());
        if (k != ssize_t(r.size())) {
            std::printf("write-failed n=%ld k=%zd errno=%d\n", n, k, errno);
            return 4;
        }
        // The acknowledgement promises durability on the host, so it comes after fsync.
        if (::fsync(fd) != 0) {
            std::printf("fsync-failed n=%ld errno=%d\n", n, errno);
            return 5;
        }
        std::printf("ack %ld\n", n);
    }
    ::close(fd);
    std::printf("append-done\n");
    return 0;
}

const char* errno_name(int e) {
    switch (e) {
        case EMFILE: return "EMFILE";
        case ENFILE: return "ENFILE";
        case ENOMEM: return "ENOMEM";
        case ENOSPC: return "ENOSPC";
        default: return "other";
    }
}

int openmany(const char* dir, long count) {
    // Our own per-process limit must not be the one we hit: raise it past COUNT.
    rlimit rl{rlim_t(count + 64), rlim_t(count + 64)};
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        std::printf("setrlimit-failed errno=%d\n", errno);
        return 3;
    }
    std::vector<int> fds;
    int err = 0;
    for (long i = 0; i < count; ++i) {
        std::string name = std::string(dir) + "/f" + std::to_string(i);
        int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            err = errno;
            break;
        }
        fds.push_back(fd);
    }
    std::printf("opened %zu errno=%d %s\n", fds.size(), err, err ? errno_name(err) : "none");
    // A refused create must leave nothing behind (open(2) creates no file when it fails). At the
    // cap even a LOOKUP may be refused, so this is asked again once the tables have room.
    const std::string refused = std::string(dir) + "/f" + std::to_string(fds.size());
    auto report_refused = [&](const char* when) {
        if (err == 0) return;
        if (::access(refused.c_str(), F_OK) == 0)
            std::printf("refused-name-%s exists\n", when);
        else
            std::printf("refused-name-%s %s errno=%d\n", when, errno == ENOENT ? "absent" : "unknown", errno);
    };
    report_refused("at-cap");
    // The held files still work while the server is at its cap.
    if (!fds.empty()) {
        const char msg[] = "still-writable\n";
        ssize_t k = ::pwrite(fds.front(), msg, sizeof msg - 1, 0);
        std::printf("write-held %s\n", k == ssize_t(sizeof msg - 1) ? "ok" : "failed");
    }
    const size_t held = fds.size();
    for (int fd : fds) ::close(fd);
    fds.clear();
    // Unlinking drops the guest's last reference to each inode, so the server gets a FORGET
    // and its inode table (not only its handle table) has room again.
    size_t unlink_failed = 0;
    for (size_t i = 0; i < held; ++i)
        if (::unlink((std::string(dir) + "/f" + std::to_string(i)).c_str()) != 0) ++unlink_failed;
    std::printf("unlink-failed %zu\n", unlink_failed);
    // Releases and forgets reach the server asynchronously; give them a moment before judging.
    const std::string again = std::string(dir) + "/after-close";
    for (int attempt = 1; attempt <= 50; ++attempt) {
        int fd = ::open(again.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            const char msg[] = "reopened\n";
            char back[sizeof msg] = {};
            bool ok = ::pwrite(fd, msg, sizeof msg - 1, 0) == ssize_t(sizeof msg - 1) &&
                      ::pread(fd, back, sizeof msg - 1, 0) == ssize_t(sizeof msg - 1) &&
                      std::memcmp(back, msg, sizeof msg - 1) == 0;
            ::close(fd);
            std::printf("reopen %s attempt=%d\n", ok ? "ok" : "mismatch", attempt);
            report_refused("later");
            return 0;
        }
        ::usleep(100 * 1000);
    }
    std::printf("reopen failed errno=%d %s\n", errno, errno_name(errno));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "eat" && argc == 3) return eat(std::atol(argv[2]));
    if (mode == "append" && argc == 4) return append(argv[2], std::atol(argv[3]));
    if (mode == "openmany" && argc == 4) return openmany(argv[2], std::atol(argv[3]));
    std::fprintf(stderr,
                 "usage: krunlet-faultprobe eat STEP_MIB | append FILE COUNT | openmany DIR COUNT\n");
    return 2;
}
