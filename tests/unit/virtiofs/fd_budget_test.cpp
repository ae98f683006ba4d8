// The servers' fd caps fit in RLIMIT_NOFILE: a guest that opens everything gets ENFILE while
// the process itself still has descriptors to spare.
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "fuse_client.h"
#include "virtiofs/fd_budget.h"

using namespace vfstest;
using krunlet::fs::fd_budget;
using krunlet::fs::split_fd_budget;

TEST_CASE("the fd budget: reserve for the VMM, even split, cap per kind, clear refusal") {
    auto b = split_fd_budget(1024, 20, 1);
    REQUIRE(b.ok());
    CHECK(b->max_inodes == (1024 - 20 - krunlet::fs::kVmmFdReserve) / 2);
    CHECK(b->max_handles == b->max_inodes);
    auto two = split_fd_budget(1024, 20, 2);
    REQUIRE(two.ok());
    CHECK(two->max_inodes == (1024 - 20 - krunlet::fs::kVmmFdReserve) / 4);
    auto big = split_fd_budget(size_t{1} << 20, 20, 1);
    REQUIRE(big.ok());
    CHECK(big->max_inodes == krunlet::fs::kMaxFdsPerKind);

    auto low = split_fd_budget(300, 20, 1);
    REQUIRE(!low.ok());
    CHECK(low.error().code == EMFILE);
    CHECK(low.error().message.find("RLIMIT_NOFILE 300") != std::string::npos);
    CHECK(low.error().message.find("ulimit -n") != std::string::npos);
    CHECK(split_fd_budget(100, 200, 1).error().code == EMFILE);  // more open than allowed
}

// In a child (the limit is process-wide): RLIMIT_NOFILE 420, one share with the budget's caps,
// a guest that looks up and opens 400 files.
TEST_CASE("under a low RLIMIT_NOFILE the guest runs into ENFILE, never the process into EMFILE") {
    TempDir d;
    for (int i = 0; i < 400; ++i) write_file(d / ("f" + std::to_string(i)), "x");
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Exit codes: 0 ok, 1 setup, 2 no ENFILE, 3 a cap not used up exactly, 4 the process is out
        // of fds.
        rlimit rl{420, 420};
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(1);
        auto budget = fd_budget(1);
        if (!budget.ok()) ::_exit(1);
        ServerConfig cfg;
        cfg.root_dir = d.path();
        cfg.cache = CachePolicy::Never;
        cfg.max_inodes = budget->max_inodes;
        cfg.max_handles = budget->max_handles;
        auto s = Server::create(cfg);
        if (!s.ok()) ::_exit(1);
        Client c(**s);
        if (c.init().error() != 0) ::_exit(1);
        size_t looked_up = 0, opened = 0;
        bool enfile = false;
        for (int i = 0; i < 400; ++i) {
            Reply r = c.lookup(FUSE_ROOT_ID, "f" + std::to_string(i));
            if (r.error() == ENFILE) {
                enfile = true;
                break;
            }
            if (r.error() != 0) ::_exit(4);  // EMFILE or anything else: the process ran out
            ++looked_up;
            // Two handles per inode: the handle cap is reached first, the inode cap later.
            for (int k = 0; k < 2; ++k) {
                Reply o = c.open(r.as<fuse_entry_out>().nodeid, O_RDONLY);
                if (o.error() == ENFILE) continue;
                if (o.error() != 0) ::_exit(4);
                ++opened;
            }
        }
        if (!enfile) ::_exit(2);
        if (looked_up + 1 != budget->max_inodes || opened != budget->max_handles) {  // the root is one inode
            std::fprintf(stderr, "looked up %zu (cap %zu), opened %zu (cap %zu)\n", looked_up, budget->max_inodes, opened,
                         budget->max_handles);
            ::_exit(3);
        }
        // What the VMM needs next (an eventfd, an accepted socket) still gets a descriptor.
        std::vector<int> spare;
        for (int i = 0; i < 64; ++i) {
            int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0) ::_exit(4);
            spare.push_back(fd);
        }
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
