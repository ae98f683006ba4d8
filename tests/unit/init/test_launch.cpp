// Starting real workloads (init/launch.h) and init's wait loop
// (init/supervisor.h), on the host: the same code that runs as pid 1 in the
// guest, with a socket pair in place of the vsock connection.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <variant>

#include "base/control_protocol.h"
#include "init/config.h"
#include "init/launch.h"
#include "init/process.h"
#include "init/supervisor.h"

using namespace krunlet;
using namespace krunlet::init;
using namespace std::chrono_literals;

namespace {

// A scratch directory, removed at the end.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/krunlet-init-test-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::string cmd = "rm -rf '" + path + "'";
        [[maybe_unused]] int r = std::system(cmd.c_str());
    }
};

LaunchSpec sh(const std::string& script) {
    LaunchSpec s;
    s.args = {"sh", "-c", script};
    s.env = finalize_env({}, "/", false);
    s.cwd = "/";
    s.user.uid = getuid();
    s.user.gid = getgid();
    return s;
}

bool running_as_root() {
    if (geteuid() == 0) return true;
    MESSAGE("skipped: needs root to change identity, as init does");
    return false;
}

// Launches and supervises to the end; the status, or the failure's code.
int run_to_end(const LaunchSpec& spec, std::string* failure = nullptr, ControlChannel* control = nullptr) {
    auto sup = Supervisor::create();
    REQUIRE(sup.ok());
    auto launched = launch(spec);
    if (auto* f = std::get_if<LaunchFailure>(&launched)) {
        if (failure) *failure = f->message;
        return f->exit_code;
    }
    auto status = sup->run(std::get<pid_t>(launched), control);
    REQUIRE_MESSAGE(status.ok(), (status.ok() ? "" : status.error().message));
    return *status;
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    REQUIRE(chmod(path.c_str(), mode) == 0);
}

}  // namespace

TEST_CASE("the workload's exit code and death by signal come back as 0..255") {
    CHECK(run_to_end(sh("exit 0")) == 0);
    CHECK(run_to_end(sh("exit 7")) == 7);
    CHECK(run_to_end(sh("kill -TERM $$")) == 128 + SIGTERM);
    CHECK(run_to_end(sh("kill -KILL $$")) == 137);
}

TEST_CASE("exec failures: not found is 127, cannot execute is 126, with a message") {
    TempDir dir;
    std::string msg;

    LaunchSpec missing = sh("");
    missing.args = {"krunlet-no-such-command"};
    CHECK(run_to_end(missing, &msg) == 127);
    CHECK(msg == "exec \"krunlet-no-such-command\": No such file or directory (searched PATH=" +
                     std::string(kDefaultPath) + ")");

    missing.args = {dir.path + "/absent"};
    CHECK(run_to_end(missing, &msg) == 127);
    CHECK(msg == "exec \"" + dir.path + "/absent\": No such file or directory");

    write_file(dir.path + "/noexec", "#!/bin/sh\nexit 0\n", 0644);
    LaunchSpec denied = sh("");
    denied.args = {dir.path + "/noexec"};
    // Even root needs an x bit for execve().
    CHECK(run_to_end(denied, &msg) == 126);
    CHECK(msg.find("Permission denied") != std::string::npos);

    LaunchSpec directory = sh("");
    directory.args = {dir.path};
    CHECK(run_to_end(directory, &msg) == 126);

    write_file(dir.path + "/garbage", "\x01\x02\x03 not a program", 0755);
    LaunchSpec garbage = sh("");
    garbage.args = {dir.path + "/garbage"};
    CHECK(run_to_end(garbage, &msg) == 126);
    CHECK(msg.find("Exec format error") != std::string::npos);
}

TEST_CASE("PATH search uses the workload's PATH and remembers EACCES like execvp") {
    TempDir dir;
    std::string a = dir.path + "/a", b = dir.path + "/b";
    REQUIRE(mkdir(a.c_str(), 0755) == 0);
    REQUIRE(mkdir(b.c_str(), 0755) == 0);
    write_file(b + "/tool", "#!/bin/sh\nexit 42\n", 0755);
    LaunchSpec s = sh("");
    s.args = {"tool"};
    s.env = {"PATH=" + a + ":" + b};
    CHECK(run_to_end(s) == 42);

    // A non-executable match first, then nothing: EACCES wins over ENOENT.
    write_file(a + "/only", "#!/bin/sh\nexit 0\n", 0644);
    s.args = {"only"};
    std::string msg;
    CHECK(run_to_end(s, &msg) == 126);
    CHECK(msg.find("Permission denied") != std::string::npos);
}

TEST_CASE("the environment, the working directory and argv reach the workload") {
    TempDir dir;
    LaunchSpec s = sh("test \"$PWD\" = \"$EXPECT_DIR\" && test \"${#BIG}\" -eq 102400 && test \"$1\" = 'two words' "
                      "&& test \"$(pwd -P)\" = \"$EXPECT_DIR\"");
    s.args.push_back("argv0");
    s.args.push_back("two words");
    std::string big(102400, 'x');
    // 100 KiB in one variable plus 100 KiB in many small ones.
    for (int i = 0; i < 1600; ++i) s.env.push_back("V" + std::to_string(i) + "=" + std::string(58, 'y'));
    s.env.push_back("BIG=" + big);
    s.env.push_back("EXPECT_DIR=" + dir.path);
    s.cwd = dir.path;
    CHECK(run_to_end(s) == 0);
}

TEST_CASE("a missing working directory is created; one that cannot be entered is 125") {
    TempDir dir;
    LaunchSpec s = sh("test \"$(pwd)\" = \"$WANT\"");
    s.cwd = dir.path + "/new/nested";
    s.env.push_back("WANT=" + s.cwd);
    CHECK(run_to_end(s) == 0);
    struct stat st;
    CHECK(stat(s.cwd.c_str(), &st) == 0);

    write_file(dir.path + "/file", "", 0644);
    LaunchSpec bad = sh("exit 0");
    bad.cwd = dir.path + "/file";
    std::string msg;
    CHECK(run_to_end(bad, &msg) == control::kExitInitFailed);
    CHECK(msg == "chdir to the working directory \"" + bad.cwd + "\" as uid " + std::to_string(getuid()) +
                     ": Not a directory");
}

TEST_CASE("rlimits are applied in order, and a refused one is 125") {
    LaunchSpec s = sh("test \"$(ulimit -n)\" = 200 && test \"$(ulimit -c)\" = 0");
    s.rlimits = {{RLIMIT_NOFILE, 100, 300}, {RLIMIT_CORE, 0, 0}, {RLIMIT_NOFILE, 200, 250}};
    CHECK(run_to_end(s) == 0);

    LaunchSpec too_big = sh("exit 0");
    too_big.rlimits = {{RLIMIT_NOFILE, 1ull << 40, 1ull << 40}};  // above fs.nr_open
    std::string msg;
    CHECK(run_to_end(too_big, &msg) == control::kExitInitFailed);
    CHECK(msg.find("setrlimit RLIMIT_NOFILE soft=1099511627776 hard=1099511627776: ") == 0);
}

TEST_CASE("the workload runs as the configured uid, gid and groups") {
    if (!running_as_root()) return;
    LaunchSpec s = sh("test \"$(id -u)\" = 65534 && test \"$(id -g)\" = 65533 && "
                      "test \"$(id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' ')\" = '10 44 65533 '");
    s.user.uid = 65534;
    s.user.gid = 65533;
    s.user.additional_gids = {10, 44};
    CHECK(run_to_end(s) == 0);

    LaunchSpec mask = sh("test \"$(umask)\" = 0027");
    mask.user.umask = 027;
    CHECK(run_to_end(mask) == 0);
}

TEST_CASE("the workload starts with default signal handling and in its own session") {
    // init blocks SIGCHLD and the test runner may ignore signals; neither may leak.
    signal(SIGUSR1, SIG_IGN);
    LaunchSpec s = sh("test \"$(cut -d' ' -f6 /proc/$$/stat)\" = $$ || exit 3; kill -USR1 $$; exit 0");
    int code = run_to_end(s);
    signal(SIGUSR1, SIG_DFL);
    CHECK(code == 128 + SIGUSR1);
}

TEST_CASE("orphans are reaped while the workload runs") {
    // The test process stands in for pid 1: orphans come back to it.
    REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    LaunchSpec s = sh("(sleep 0.1 &) ; (sleep 0.2 &) ; sleep 0.6; exit 5");
    CHECK(run_to_end(s) == 5);
    // Both orphans exited before the workload did, so nothing is left to reap.
    int status;
    CHECK(waitpid(-1, &status, WNOHANG) == -1);
    CHECK(errno == ECHILD);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_CASE("signal messages from the host are forwarded to the workload") {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ControlChannel guest = ControlChannel::adopt(UniqueFd(sv[0]));
    UniqueFd host(sv[1]);

    // Some messages arrive before the workload runs (left queued after
    // "exec"); a bad and an unknown one are skipped, not fatal.
    std::string early = control::frame(R"({"type":"exec"})") + control::frame(R"({"type":"hello"})") +
                        control::frame("not json");
    REQUIRE(write(host.get(), early.data(), early.size()) == static_cast<ssize_t>(early.size()));
    auto first = guest.wait_message(1s);
    REQUIRE(first.ok());

    std::thread sender([&] {
        std::this_thread::sleep_for(300ms);
        std::string f = control::frame(R"({"type":"signal","signo":15})");
        [[maybe_unused]] ssize_t n = write(host.get(), f.data(), f.size());
    });
    auto start = std::chrono::steady_clock::now();
    int code = run_to_end(sh("exec sleep 10"), nullptr, &guest);
    sender.join();
    CHECK(code == 128 + SIGTERM);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(guest.open());
}

TEST_CASE("a host that hangs up does not stop the wait for the workload") {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    ControlChannel guest = ControlChannel::adopt(UniqueFd(sv[0]));
    close(sv[1]);
    CHECK(run_to_end(sh("sleep 0.2; exit 9"), nullptr, &guest) == 9);
    CHECK_FALSE(guest.open());
}

TEST_CASE("an empty command is refused before fork") {
    LaunchSpec s = sh("");
    s.args = {""};
    std::string msg;
    CHECK(run_to_end(s, &msg) == 127);
    CHECK(msg == "the command to run is empty");
}
