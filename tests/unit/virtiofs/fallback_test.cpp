// Kernels (or seccomp profiles) without openat2: the single-component openat fallback must be
// just as confined. The scenario runs in a forked child whose seccomp filter answers ENOSYS for
// openat2, so the server's probe and its per-call fallback both take the old path.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "fuse_client.h"

using namespace vfstest;

namespace {

bool deny_openat2() {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

// Runs in the child: no doctest assertions here (they would report from the wrong process).
// Returns 0 when every check holds, else the number of the first failed check.
int child_scenario(const std::string& share, const std::string& outside) {
    if (!deny_openat2()) return 100;
    if (::syscall(SYS_openat2, AT_FDCWD, ".", nullptr, 0) != -1 || errno != ENOSYS) return 101;
    ServerConfig cfg;
    cfg.root_dir = share;
    auto made = Server::create(cfg);
    if (!made) return 102;
    Server& s = **made;
    std::vector<uint8_t> out(1 << 16);
    auto call = [&](uint32_t op, uint64_t node, const Args& a, fuse_entry_out* e = nullptr) {
        fuse_in_header h{};
        h.len = static_cast<uint32_t>(sizeof(h) + a.bytes().size());
        h.opcode = op;
        h.unique = 1;
        h.nodeid = node;
        std::vector<uint8_t> req(sizeof(h));
        std::memcpy(req.data(), &h, sizeof(h));
        req.insert(req.end(), a.bytes().begin(), a.bytes().end());
        iovec iov{out.data(), out.size()};
        size_t n = s.handle(req, std::span<const iovec>(&iov, 1));
        fuse_out_header oh{};
        if (n < sizeof(oh)) return -1;
        std::memcpy(&oh, out.data(), sizeof(oh));
        if (e && oh.error == 0) std::memcpy(e, out.data() + sizeof(oh), sizeof(*e));
        return -oh.error;
    };
    fuse_init_in init{7, 38, 0, 0, 0, {}};
    if (call(FUSE_INIT, 0, Args().obj(init)) != 0) return 1;
    fuse_entry_out e{};
    if (call(FUSE_LOOKUP, FUSE_ROOT_ID, Args().str("esc"), &e) != 0 || (e.attr.mode & S_IFMT) != S_IFLNK) return 2;
    uint64_t esc = e.nodeid;
    if (call(FUSE_LOOKUP, esc, Args().str("tmp")) != ENOTDIR) return 3;
    fuse_open_in oi{O_RDWR | O_TRUNC, 0};
    if (call(FUSE_LOOKUP, FUSE_ROOT_ID, Args().str("canary_abs"), &e) != 0) return 4;
    if (call(FUSE_OPEN, e.nodeid, Args().obj(oi)) != ELOOP) return 5;
    fuse_create_in ci{O_RDWR | O_TRUNC, 0644, 0, 0};
    if (call(FUSE_CREATE, FUSE_ROOT_ID, Args().obj(ci).str("canary_abs")) != ELOOP) return 6;
    if (call(FUSE_LOOKUP, FUSE_ROOT_ID, Args().str("..")) != 0) return 7;
    if (call(FUSE_LOOKUP, FUSE_ROOT_ID, Args().str("../x")) != EINVAL) return 8;
    // Ordinary work still happens.
    if (call(FUSE_CREATE, FUSE_ROOT_ID, Args().obj(ci).str("made"), &e) != 0) return 9;
    if (call(FUSE_LOOKUP, FUSE_ROOT_ID, Args().str("file"), &e) != 0 || e.attr.size != 4) return 10;
    fuse_open_in ro{O_RDONLY, 0};
    if (call(FUSE_OPEN, e.nodeid, Args().obj(ro)) != 0) return 11;
    if (read_file(outside + "/canary") != "safe") return 12;
    return 0;
}

}  // namespace

TEST_CASE("without openat2 (seccomp says ENOSYS) lookups stay confined") {
    TempDir outside;
    write_file(outside / "canary", "safe");
    TempDir d;
    write_file(d / "file", "data");
    REQUIRE(::symlink("/", (d / "esc").c_str()) == 0);
    REQUIRE(::symlink((outside / "canary").c_str(), (d / "canary_abs").c_str()) == 0);

    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(child_scenario(d.path(), outside.path()));
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, "child check " << WEXITSTATUS(status) << " failed");
    CHECK(read_file(outside / "canary") == "safe");
    CHECK(exists(d / "made"));
}
