#include "fs_workload.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "base/fd.h"

namespace krunlet::bench {
namespace {

constexpr size_t kPage = 4096;
constexpr uint64_t kSubdirsPerTop = 10;
constexpr uint64_t kFilesPerSubdir = 500;

Result<void> write_all(int fd, const uint8_t* p, size_t n, const std::string& what) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return errno_error("writing " + what);
        p += w;
        n -= size_t(w);
    }
    return ok_result();
}

Result<void> make_dir(const std::string& path) {
    if (::mkdir(path.c_str(), 0755) != 0) return errno_error("mkdir " + path);
    return ok_result();
}

Result<void> make_empty_file(int dirfd, const char* name, const std::string& where) {
    UniqueFd fd(::openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return errno_error("creating " + where + "/" + name);
    return ok_result();
}

Result<void> write_randread_file(const std::string& path, uint64_t mib) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return errno_error("creating " + path);
    std::vector<uint8_t> chunk(size_t{1} << 20, 0x5a);
    const uint64_t pages_per_chunk = chunk.size() / kPage;
    for (uint64_t c = 0; c < mib; ++c) {
        for (uint64_t i = 0; i < pages_per_chunk; ++i) {
            uint64_t index = c * pages_per_chunk + i;  // little-endian on x86_64, as the guest reads it
            std::memcpy(chunk.data() + i * kPage, &index, sizeof index);
        }
        KRUNLET_CHECK(write_all(fd.get(), chunk.data(), chunk.size(), path));
    }
    return ok_result();
}

Result<void> write_tree(const std::string& root, uint64_t entries) {
    KRUNLET_CHECK(make_dir(root));
    uint64_t made = 0;
    char name[32];
    for (uint64_t top = 0; made < entries; ++top) {
        std::snprintf(name, sizeof name, "/d%03llu", static_cast<unsigned long long>(top));
        std::string top_path = root + name;
        KRUNLET_CHECK(make_dir(top_path));
        ++made;
        for (uint64_t sub = 0; sub < kSubdirsPerTop && made < entries; ++sub) {
            std::snprintf(name, sizeof name, "/d%02llu", static_cast<unsigned long long>(sub));
            std::string sub_path = top_path + name;
            KRUNLET_CHECK(make_dir(sub_path));
            ++made;
            UniqueFd dfd(::open(sub_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (!dfd.valid()) return errno_error("opening " + sub_path);
            for (uint64_t f = 0; f < kFilesPerSubdir && made < entries; ++f) {
                std::snprintf(name, sizeof name, "f%03llu", static_cast<unsigned long long>(f));
                KRUNLET_CHECK(make_empty_file(dfd.get(), name, sub_path));
                ++made;
            }
        }
    }
    return ok_result();
}

Result<void> copy_executable(const std::string& from, const std::string& to) {
    UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in.valid()) return errno_error("opening " + from + " (build the krunlet-fsbench-guest target)");
    UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755));
    if (!out.valid()) return errno_error("creating " + to);
    std::vector<uint8_t> buf(1 << 16);
    for (;;) {
        ssize_t n = ::read(in.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error("reading " + from);
        if (n == 0) break;
        KRUNLET_CHECK(write_all(out.get(), buf.data(), size_t(n), to));
    }
    return ok_result();
}

bool exists(const std::string& path) {
    struct stat st{};
    return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

Result<void> remove_tree(const std::string& path) {
    if (!exists(path)) return ok_result();
    int rc = ::nftw(
        path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 64,
        FTW_DEPTH | FTW_PHYS);
    if (rc != 0) return errno_error("removing " + path);
    return ok_result();
}

Result<WorkDir> WorkDir::prepare(const std::string& rootfs, const WorkloadSpec& spec) {
    auto t0 = std::chrono::steady_clock::now();
    struct stat st{};
    if (::stat(rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return make_error(ENOTDIR, "ROOTFS " + rootfs + " is not a directory: pass an existing directory "
                                   "(an empty one on tmpfs is best, docs/bench.md)");
    std::string path = rootfs + kGuestDir;
    if (exists(path)) {
        if (!exists(path + "/.krunlet-fsbench"))
            return make_error(EEXIST, path + " exists and is not krunlet-bench's: move it away or use another ROOTFS");
        KRUNLET_CHECK(remove_tree(path));
    }
    WorkDir w;
    KRUNLET_CHECK(make_dir(path));
    w.path_ = path;  // from here on the destructor cleans up
    {
        UniqueFd stamp(::open((path + "/.krunlet-fsbench").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        if (!stamp.valid()) return errno_error("creating " + path + "/.krunlet-fsbench");
    }
    KRUNLET_CHECK(copy_executable(spec.guest_binary, rootfs + kGuestBinary));
    KRUNLET_CHECK(write_randread_file(path + "/randread.dat", spec.randread_mib));
    KRUNLET_CHECK(write_tree(path + "/tree", spec.tree_entries));
    ::sync();
    w.prepare_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return w;
}

WorkDir::WorkDir(WorkDir&& o) noexcept
    : path_(std::exchange(o.path_, std::string())), keep_(o.keep_), prepare_s_(o.prepare_s_) {}

WorkDir::~WorkDir() {
    if (!path_.empty() && !keep_) (void)remove_tree(path_);
}

Result<void> WorkDir::reset() const {
    if (::unlink((path_ + "/seq.dat").c_str()) != 0 && errno != ENOENT)
        return errno_error("removing " + path_ + "/seq.dat");
    return remove_tree(path_ + "/small");
}

}  // namespace krunlet::bench
