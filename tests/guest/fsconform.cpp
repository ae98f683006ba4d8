// krunlet-fsconform [--uid N [--gid N]] [--files N] [--progress] DIR
//
// Replays a fixed sequence of file operations in DIR and prints a canonical transcript on
// stdout (conform_ctx.h says what a line may contain). The integration test
// (tests/integration/conformance_test.cpp) runs it on a host directory and inside a microVM
// on a virtio-fs directory of the same filesystem, and requires identical transcripts.
//
// DIR is created (0755) if missing and must be empty. As root, the program first creates a
// few root-owned fixtures in it; with --uid it then hands DIR to that uid, drops every
// privilege (setgroups(0), setgid, setuid) and runs the sequences as that user.
// Exit status: 0 when the whole sequence ran (whatever each call returned), 2 for bad usage
// or an unusable DIR. The run time goes to stderr, never into the transcript.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "conform_ctx.h"

namespace {

struct Options {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    int files = 10000;
    bool progress = false;
    std::string dir;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "krunlet-fsconform: %s\n"
                 "usage: krunlet-fsconform [--uid N [--gid N]] [--files N] [--progress] DIR\n"
                 "  runs a fixed sequence of file operations in DIR (created if missing, must be empty)\n"
                 "  and prints a canonical transcript; --uid drops to that user after the root fixtures\n",
                 why);
    std::exit(2);
}

unsigned long number(const char* s, const char* what) {
    char* end = nullptr;
    errno = 0;
    unsigned long v = std::strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > 0x7fffffffUL)
        usage((std::string(what) + " needs a non-negative number, got '" + s + "'").c_str());
    return v;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* what) {
            if (i + 1 >= argc) usage((std::string(what) + " needs a value").c_str());
            return number(argv[++i], what);
        };
        if (a == "--uid") {
            o.uid = static_cast<uid_t>(value("--uid"));
        } else if (a == "--gid") {
            o.gid = static_cast<gid_t>(value("--gid"));
        } else if (a == "--progress") {
            o.progress = true;
        } else if (a == "--files") {
            o.files = static_cast<int>(value("--files"));
        } else if (a.rfind("--", 0) == 0) {
            usage(("unknown option " + a).c_str());
        } else if (o.dir.empty()) {
            o.dir = a;
        } else {
            usage("only one DIR");
        }
    }
    if (o.dir.empty()) usage("DIR is missing");
    if (o.gid && !o.uid) usage("--gid needs --uid");
    if (o.uid && !o.gid) o.gid = static_cast<gid_t>(*o.uid);
    if (o.files < 1) usage("--files must be at least 1");
    return o;
}

// DIR must be an empty directory we may work in; fails with a message naming the fix.
void enter_dir(const Options& o) {
    if (::mkdir(o.dir.c_str(), 0755) != 0 && errno != EEXIST) {
        std::fprintf(stderr, "krunlet-fsconform: mkdir %s: %s\n", o.dir.c_str(), std::strerror(errno));
        std::exit(2);
    }
    if (::chdir(o.dir.c_str()) != 0) {
        std::fprintf(stderr, "krunlet-fsconform: chdir %s: %s\n", o.dir.c_str(), std::strerror(errno));
        std::exit(2);
    }
    // chmod past the umask, so DIR looks the same whoever created it.
    if (::chmod(".", 0755) != 0) {
        std::fprintf(stderr, "krunlet-fsconform: chmod %s: %s\n", o.dir.c_str(), std::strerror(errno));
        std::exit(2);
    }
    // The transcript compares whole runs: leftovers would make it depend on history.
    DIR* d = ::opendir(".");
    if (d == nullptr) {
        std::fprintf(stderr, "krunlet-fsconform: opendir %s: %s\n", o.dir.c_str(), std::strerror(errno));
        std::exit(2);
    }
    int entries = 0;
    while (const struct dirent* de = ::readdir(d))
        entries += std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0;
    ::closedir(d);
    if (entries != 0) {
        std::fprintf(stderr, "krunlet-fsconform: %s is not empty; give a fresh directory\n", o.dir.c_str());
        std::exit(2);
    }
}

// setgroups(0), setgid, setuid: after this the process has no privilege left.
void drop(fsconform::Ctx& c, uid_t uid, gid_t gid) {
    c.section("drop privileges");
    c.call("chown(.," + std::to_string(uid) + "," + std::to_string(gid) + ")", [&] { return ::chown(".", uid, gid); });
    c.call("setgroups(0)", [] { return ::setgroups(0, nullptr); });
    c.call("setgid(" + std::to_string(gid) + ")", [&] { return ::setgid(gid); });
    c.call("setuid(" + std::to_string(uid) + ")", [&] { return ::setuid(uid); });
    c.note("ids = uid=" + std::to_string(::geteuid()) + " gid=" + std::to_string(::getegid()) +
           " groups=" + std::to_string(::getgroups(0, nullptr)));
    if (::geteuid() != uid || ::getuid() != uid || ::getegid() != gid) {
        std::fprintf(stderr, "krunlet-fsconform: could not become uid %u gid %u (run it as root)\n",
                     static_cast<unsigned>(uid), static_cast<unsigned>(gid));
        std::exit(2);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    auto t0 = std::chrono::steady_clock::now();
    ::umask(022);
    enter_dir(o);

    bool root = ::geteuid() == 0;
    if (!root && o.uid) usage("--uid needs root (it drops to that uid after the root fixtures)");
    fsconform::Ctx c(root && !o.uid, o.progress);
    c.note("# krunlet-fsconform transcript; uid=" + std::to_string(o.uid ? *o.uid : ::geteuid()));
    if (root) fsconform::prepare_root_fixtures(c);
    if (o.uid) drop(c, *o.uid, *o.gid);

    fsconform::seq_files(c);
    fsconform::seq_rename(c);
    fsconform::seq_links(c);
    fsconform::seq_symlinks(c);
    fsconform::seq_modes(c);
    fsconform::seq_times(c);
    fsconform::seq_xattrs(c);
    fsconform::seq_dirs_nodes(c);
    fsconform::seq_locks(c);
    fsconform::seq_sparse(c);
    fsconform::seq_tmpfile(c);
    fsconform::seq_permissions(c);
    fsconform::seq_many_files(c, o.files);
    fsconform::seq_tree(c);
    c.note("# end");

    std::string out = c.take();
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::write(1, out.data() + done, out.size() - done);
        if (n <= 0) {
            std::perror("krunlet-fsconform: write transcript");
            return 2;
        }
        done += static_cast<size_t>(n);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "krunlet-fsconform: %s: %zu calls, %d files, %.2f s\n", o.dir.c_str(), c.calls(), o.files,
                 secs);
    return 0;
}
