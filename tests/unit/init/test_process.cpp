// User lookup, the final environment, the PATH search list and the exit-code
// rules (init/process.h).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cerrno>

#include "init/process.h"

using namespace krunlet::init;

namespace {

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "# a comment line\n"
    "\n"
    "broken line without colons\n"
    "short:x:5\n"
    "badid:x:abc:1:bad:/nowhere:/bin/sh\n"
    "nginx:x:101:101:nginx user:/var/cache/nginx:/sbin/nologin\n"
    "app:x:1000:1000::/home/app:/bin/sh\n"
    "dup:x:1000:5::/home/dup:/bin/sh";  // no final newline, and a second uid 1000

constexpr const char* kGroup =
    "root:x:0:\n"
    "wheel:x:10:app,alice\n"
    "nginx:x:101:\n"
    "video:x:44:bob,app\n"
    "bad:x:notanumber:app\n"
    "app:x:1000:";

// The status of a real child that did `body`.
int status_of(void (*body)()) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        body();
        _exit(99);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

}  // namespace

TEST_CASE("passwd and group lookups skip malformed lines") {
    auto root = passwd_by_name(kPasswd, "root");
    REQUIRE(root.has_value());
    CHECK(root->uid == 0);
    CHECK(root->home == "/root");
    auto nginx = passwd_by_uid(kPasswd, 101);
    REQUIRE(nginx.has_value());
    CHECK(nginx->name == "nginx");
    CHECK(nginx->gid == 101);
    CHECK(nginx->home == "/var/cache/nginx");
    CHECK(passwd_by_uid(kPasswd, 1000)->name == "app");  // the first match wins
    CHECK(passwd_by_name(kPasswd, "dup")->gid == 5);     // a last line without '\n'
    CHECK_FALSE(passwd_by_name(kPasswd, "short").has_value());
    CHECK_FALSE(passwd_by_name(kPasswd, "badid").has_value());
    CHECK_FALSE(passwd_by_name(kPasswd, "nobody").has_value());
    CHECK_FALSE(passwd_by_uid("", 0).has_value());

    CHECK(*group_by_name(kGroup, "wheel") == 10);
    CHECK(*group_by_name(kGroup, "app") == 1000);
    CHECK_FALSE(group_by_name(kGroup, "bad").has_value());
    CHECK_FALSE(group_by_name(kGroup, "missing").has_value());
    CHECK(groups_with_member(kGroup, "app") == std::vector<gid_t>{10, 44});
    CHECK(groups_with_member(kGroup, "al").empty());
}

TEST_CASE("Docker-style User resolves like Docker") {
    auto r = resolve_docker_user("", kPasswd, kGroup);
    REQUIRE(r.ok());
    CHECK(r->uid == 0);
    CHECK(r->gid == 0);

    auto name = resolve_docker_user("app", kPasswd, kGroup);
    REQUIRE(name.ok());
    CHECK(name->uid == 1000);
    CHECK(name->gid == 1000);
    CHECK(name->additional_gids == std::vector<gid_t>{10, 44});

    auto uid = resolve_docker_user("101", kPasswd, kGroup);
    REQUIRE(uid.ok());
    CHECK(uid->uid == 101);
    CHECK(uid->gid == 101);  // primary group from /etc/passwd

    auto unknown_uid = resolve_docker_user("4242", kPasswd, kGroup);
    REQUIRE(unknown_uid.ok());
    CHECK(unknown_uid->uid == 4242);
    CHECK(unknown_uid->gid == 0);

    auto both = resolve_docker_user("nginx:video", kPasswd, kGroup);
    REQUIRE(both.ok());
    CHECK(both->uid == 101);
    CHECK(both->gid == 44);
    CHECK(both->additional_gids.empty());  // an explicit group replaces the lookup

    auto numeric = resolve_docker_user("5:6", "", "");
    REQUIRE(numeric.ok());
    CHECK(numeric->uid == 5);
    CHECK(numeric->gid == 6);

    auto missing = resolve_docker_user("www-data", kPasswd, kGroup);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message ==
          "User \"www-data\" is not in the image's /etc/passwd; give a numeric uid instead");
    auto bad_group = resolve_docker_user("app:nope", kPasswd, kGroup);
    REQUIRE_FALSE(bad_group.ok());
    CHECK(bad_group.error().message.find("group \"nope\"") != std::string::npos);
}

TEST_CASE("finalize_env adds PATH and HOME when unset, TERM only on a terminal") {
    auto env = finalize_env({"A=1"}, "/home/app", false);
    CHECK(env == std::vector<std::string>{"A=1", std::string("PATH=") + kDefaultPath, "HOME=/home/app"});
    CHECK(std::string(kDefaultPath) == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

    auto kept = finalize_env({"PATH=/mine", "HOME=/h", "TERM=vt100"}, "/other", true);
    CHECK(kept == std::vector<std::string>{"PATH=/mine", "HOME=/h", "TERM=vt100"});

    auto tty = finalize_env({}, "", true);
    CHECK(tty == std::vector<std::string>{std::string("PATH=") + kDefaultPath, "HOME=/", "TERM=xterm"});
}

TEST_CASE("exec_candidates follows execvp's PATH rules") {
    CHECK(exec_candidates("/bin/ls", "/x") == std::vector<std::string>{"/bin/ls"});
    CHECK(exec_candidates("./run.sh", "/x") == std::vector<std::string>{"./run.sh"});
    CHECK(exec_candidates("ls", "/usr/bin:/bin/") == std::vector<std::string>{"/usr/bin/ls", "/bin/ls"});
    // Empty elements (leading, trailing, doubled) are the current directory.
    CHECK(exec_candidates("ls", ":/bin::") == std::vector<std::string>{"./ls", "/bin/ls", "./ls", "./ls"});
    CHECK(exec_candidates("ls", "") == std::vector<std::string>{"./ls"});
    CHECK(exec_candidates("", "/bin").empty());
}

TEST_CASE("which exec errors keep the PATH search going") {
    CHECK(exec_error_continues_search(ENOENT));
    CHECK(exec_error_continues_search(ENOTDIR));
    CHECK(exec_error_continues_search(EACCES));
    CHECK_FALSE(exec_error_continues_search(ENOEXEC));
    CHECK_FALSE(exec_error_continues_search(E2BIG));
    CHECK_FALSE(exec_error_continues_search(ENOMEM));
}

TEST_CASE("exit codes: exited, signalled, exec errors") {
    CHECK(exit_code_from_wait_status(status_of([] { _exit(0); })) == 0);
    CHECK(exit_code_from_wait_status(status_of([] { _exit(3); })) == 3);
    CHECK(exit_code_from_wait_status(status_of([] { _exit(255); })) == 255);
    CHECK(exit_code_from_wait_status(status_of([] {
              signal(SIGTERM, SIG_DFL);
              raise(SIGTERM);
          })) == 128 + SIGTERM);
    CHECK(exit_code_from_wait_status(status_of([] { raise(SIGKILL); })) == 137);

    CHECK(exit_code_for_exec_errno(ENOENT) == 127);
    CHECK(exit_code_for_exec_errno(EACCES) == 126);
    CHECK(exit_code_for_exec_errno(ENOEXEC) == 126);
    CHECK(exit_code_for_exec_errno(EISDIR) == 126);
    CHECK(exit_code_for_exec_errno(EPERM) == 126);
    CHECK(exit_code_for_exec_errno(E2BIG) == 126);
}
