#include "child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

extern char** environ;

namespace krunlet::bench {
namespace {

int shell_status(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

// posix_spawn's file actions, freed on every path.
struct FileActions {
    posix_spawn_file_actions_t fa;
    FileActions() { ::posix_spawn_file_actions_init(&fa); }
    ~FileActions() { ::posix_spawn_file_actions_destroy(&fa); }
    FileActions(const FileActions&) = delete;
    FileActions& operator=(const FileActions&) = delete;
};

}  // namespace

Result<Child> Child::spawn(const std::vector<std::string>& argv, bool capture_stdout) {
    if (argv.empty()) return make_error(EINVAL, "spawn: empty argv");
    Child c;
    UniqueFd out_w;
    if (capture_stdout) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return errno_error("pipe2");
        c.out_ = UniqueFd(p[0]);
        out_w = UniqueFd(p[1]);
    }
    c.err_ = UniqueFd(::memfd_create("krunlet-bench-stderr", MFD_CLOEXEC));
    if (!c.err_.valid()) return errno_error("memfd_create");

    FileActions fa;
    ::posix_spawn_file_actions_addopen(&fa.fa, 0, "/dev/null", O_RDONLY, 0);
    if (capture_stdout)
        ::posix_spawn_file_actions_adddup2(&fa.fa, out_w.get(), 1);
    else
        ::posix_spawn_file_actions_addopen(&fa.fa, 1, "/dev/null", O_WRONLY, 0);
    ::posix_spawn_file_actions_adddup2(&fa.fa, c.err_.get(), 2);

    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    int rc = ::posix_spawn(&pid, argv[0].c_str(), &fa.fa, nullptr, args.data(), environ);
    if (rc != 0) return make_error(rc, "starting " + argv[0] + ": " + std::strerror(rc));
    c.pid_ = pid;
    return c;
}

Child::Child(Child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      status_(o.status_),
      out_(std::move(o.out_)),
      err_(std::move(o.err_)),
      buf_(std::move(o.buf_)),
      eof_(o.eof_) {}

Child::~Child() {
    if (running()) kill_and_wait();
}

std::optional<std::string> Child::next_line(Clock::time_point deadline) {
    for (;;) {
        if (auto nl = buf_.find('\n'); nl != std::string::npos) {
            std::string line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            while (!line.empty() && line.back() == '\r') line.pop_back();
            return line;
        }
        if (eof_ || !out_.valid()) {
            if (buf_.empty()) return std::nullopt;
            return std::exchange(buf_, std::string());
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return std::nullopt;
        pollfd p{out_.get(), POLLIN, 0};
        int r = ::poll(&p, 1, int(std::min<long long>(left, 1000)));
        if (r < 0 && errno != EINTR) return std::nullopt;
        if (r <= 0) continue;
        char chunk[4096];
        ssize_t n = ::read(out_.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            eof_ = true;
            continue;
        }
        buf_.append(chunk, size_t(n));
    }
}

std::optional<int> Child::wait_until(Clock::time_point deadline) {
    if (status_) return status_;
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = shell_status(st);
            return status_;
        }
        if (r < 0 && errno != EINTR) {
            status_ = 255;  // not our child any more: nothing to wait for
            return status_;
        }
        if (Clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

int Child::kill_and_wait() {
    if (!status_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
        status_ = shell_status(st);
    }
    return status_.value_or(255);
}

std::string Child::stderr_tail(size_t max) const {
    struct stat st{};
    if (!err_.valid() || ::fstat(err_.get(), &st) != 0 || st.st_size <= 0) return "";
    size_t size = size_t(st.st_size);
    size_t from = size > max ? size - max : 0;
    std::string s(size - from, '\0');
    ssize_t n = ::pread(err_.get(), s.data(), s.size(), off_t(from));
    s.resize(n > 0 ? size_t(n) : 0);
    return s;
}

std::string find_program(const std::string& name) {
    if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
    for (size_t pos = 0; pos <= p.size();) {
        size_t end = p.find(':', pos);
        if (end == std::string::npos) end = p.size();
        std::string cand = p.substr(pos, end - pos) + "/" + name;
        if (end > pos && ::access(cand.c_str(), X_OK) == 0) return cand;
        pos = end + 1;
    }
    return "";
}

}  // namespace krunlet::bench
