#include "virtiofsd_process.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <utility>
#include <vector>

#include "fs_workload.h"

namespace krunlet::bench {
namespace {

Result<void> wait_for_socket(const std::string& path, Child& owner) {
    auto until = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < until) {
        struct stat st{};
        if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return ok_result();
        if (owner.wait_until(Clock::now())) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return make_error(EIO, "virtiofsd did not create " + path + "; its stderr:\n" + owner.stderr_tail());
}

void remove_socket_dir(const std::string& dir, const std::string& socket) {
    (void)remove_tree(dir);
    // virtiofsd locks its socket with a pid file named after the socket's path, '/' turned
    // into '.', under /run/virtiofsd (its local state dir), and leaves it there.
    std::string name = socket;
    std::replace(name.begin(), name.end(), '/', '.');
    ::unlink(("/run/virtiofsd/" + name + ".pid").c_str());
}

}  // namespace

Result<Virtiofsd> Virtiofsd::start(const std::string& program, const std::string& root) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/krunlet-fsbench-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) return errno_error("mkdtemp " + dir);
    const std::string sock = dir + "/virtiofsd.sock";
    // Settings that match krunlet's server (docs/bench.md, "What is matched"). sandbox=chroot
    // keeps it one process, so its pid is the one whose CPU is sampled.
    std::vector<std::string> argv{program,
                                  "--socket-path=" + sock,
                                  "--thread-pool-size=0",
                                  "-o", "source=" + root,
                                  "-o", "cache=auto",
                                  "-o", "sandbox=chroot",
                                  "-o", "xattr",
                                  "-o", "no_killpriv_v2",
                                  "-o", "no_posix_lock",
                                  "-o", "no_flock",
                                  "-o", "no_writeback",
                                  "-o", "readdirplus",
                                  "-o", "log_level=warn"};
    auto child = Child::spawn(argv, false);
    if (!child.ok()) {
        remove_socket_dir(dir, sock);
        return child.error();
    }
    Virtiofsd v(dir, std::move(*child));
    KRUNLET_CHECK(wait_for_socket(sock, v.child_));
    return v;
}

Virtiofsd::Virtiofsd(std::string dir, Child child)
    : dir_(std::move(dir)), socket_(dir_ + "/virtiofsd.sock"), child_(std::move(child)) {}

Virtiofsd::Virtiofsd(Virtiofsd&& o) noexcept
    : dir_(std::exchange(o.dir_, std::string())), socket_(std::move(o.socket_)), child_(std::move(o.child_)) {}

Virtiofsd::~Virtiofsd() {
    if (dir_.empty()) return;
    // virtiofsd leaves by itself when its vhost-user peer hangs up; give it a moment.
    if (!child_.wait_until(Clock::now() + std::chrono::seconds(10))) child_.kill_and_wait();
    remove_socket_dir(dir_, socket_);
}

const char* virtiofsd_settings_summary() {
    return "virtiofsd: cache=auto, sandbox=chroot, --thread-pool-size=0 (one serving thread, like krunlet), "
           "xattr, no_killpriv_v2, no_posix_lock, no_flock, no_writeback, readdirplus.";
}

}  // namespace krunlet::bench
