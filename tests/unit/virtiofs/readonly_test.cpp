// Read-only shares: every op that could change the share gets EROFS, every op that only looks
// keeps working, and the host tree (names, types, modes, owners, times, contents, link
// targets, xattrs) is byte-for-byte what it was.
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <map>
#include <set>

#include "fuse_client.h"

using namespace vfstest;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

// Everything observable about the tree below `root`, as text per path.
std::map<std::string, std::string> snapshot(const std::string& root) {
    std::map<std::string, std::string> out;
    std::vector<std::string> todo = {""};
    while (!todo.empty()) {
        std::string rel = todo.back();
        todo.pop_back();
        std::string path = root + rel;
        struct stat st = lstat_of(path);
        std::string desc = std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + ":" +
                           std::to_string(st.st_gid) + " n" + std::to_string(st.st_nlink) + " s" +
                           std::to_string(st.st_size) + " m" + std::to_string(st.st_mtim.tv_sec) + "." +
                           std::to_string(st.st_mtim.tv_nsec) + " c" + std::to_string(st.st_ctim.tv_sec) + "." +
                           std::to_string(st.st_ctim.tv_nsec);
        if (S_ISREG(st.st_mode)) desc += " [" + read_file(path) + "]";
        if (S_ISLNK(st.st_mode)) {
            char t[256];
            ssize_t n = ::readlink(path.c_str(), t, sizeof(t));
            desc += " -> " + std::string(t, n > 0 ? static_cast<size_t>(n) : 0);
        }
        char names[1024];
        ssize_t nl = ::llistxattr(path.c_str(), names, sizeof(names));
        for (ssize_t i = 0; i < nl; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
            char v[256];
            ssize_t vl = ::lgetxattr(path.c_str(), names + i, v, sizeof(v));
            desc += std::string(" x:") + (names + i) + "=" + std::string(v, vl > 0 ? static_cast<size_t>(vl) : 0);
        }
        out[rel.empty() ? "/" : rel] = desc;
        if (S_ISDIR(st.st_mode)) {
            DIR* dir = ::opendir(path.c_str());
            REQUIRE(dir != nullptr);
            while (dirent* e = ::readdir(dir)) {
                std::string n = e->d_name;
                if (n != "." && n != "..") todo.push_back(rel + "/" + n);
            }
            ::closedir(dir);
        }
    }
    return out;
}

std::string setxattr_args(uint32_t size) {
    fuse_setxattr_in in{};
    in.size = size;
    return std::string(reinterpret_cast<const char*>(&in), FUSE_COMPAT_SETXATTR_IN_SIZE);
}

}  // namespace

TEST_CASE("a read-only share answers EROFS to every op that could change it") {
    TempDir d;
    write_file(d / "file", "read only content", 0644);
    REQUIRE(::mkdir((d / "dir").c_str(), 0755) == 0);
    write_file(d / "dir/inner", "inner");
    REQUIRE(::mkdir((d / "empty").c_str(), 0755) == 0);
    REQUIRE(::symlink("file", (d / "link").c_str()) == 0);
    REQUIRE(::mkfifo((d / "fifo").c_str(), 0644) == 0);
    REQUIRE(::setxattr((d / "file").c_str(), "user.keep", "v", 1, 0) == 0);
    auto before = snapshot(d.path());

    auto s = make_server(d.path(), CachePolicy::Never, /*read_only=*/true);
    Client c(*s);
    uint64_t file = c.node(kRoot, "file");
    uint64_t dir = c.node(kRoot, "dir");
    uint64_t empty = c.node(kRoot, "empty");
    uint64_t link = c.node(kRoot, "link");
    uint64_t fifo = c.node(kRoot, "fifo");
    uint64_t fh = c.open_fh(file, O_RDONLY);
    uint64_t dfh = c.open_fh(dir, O_RDONLY, FUSE_OPENDIR);
    const size_t inodes = s->stats().inodes;
    const size_t handles = s->stats().handles;

    struct Row {
        std::string what;
        uint32_t opcode;
        uint64_t node;
        Args args;
    };
    std::vector<Row> rows;
    auto setattr_row = [&](const char* what, uint64_t node, uint32_t valid) {
        fuse_setattr_in in{};
        in.valid = valid;
        in.fh = fh;
        in.mode = 0777;
        in.uid = 1;
        in.gid = 1;
        in.size = 3;
        in.atime = in.mtime = 1000;
        rows.push_back({what, FUSE_SETATTR, node, Args().obj(in)});
    };
    for (uint64_t n : {file, dir, empty, link, fifo, kRoot}) {
        std::string at = " on node " + std::to_string(n);
        setattr_row(("SETATTR mode" + at).c_str(), n, FATTR_MODE);
        setattr_row(("SETATTR uid" + at).c_str(), n, FATTR_UID);
        setattr_row(("SETATTR gid" + at).c_str(), n, FATTR_GID);
        setattr_row(("SETATTR size" + at).c_str(), n, FATTR_SIZE);
        setattr_row(("SETATTR size+fh" + at).c_str(), n, FATTR_SIZE | FATTR_FH);
        setattr_row(("SETATTR atime" + at).c_str(), n, FATTR_ATIME);
        setattr_row(("SETATTR mtime" + at).c_str(), n, FATTR_MTIME);
        setattr_row(("SETATTR times now" + at).c_str(), n, FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW);
        setattr_row(("SETATTR nothing" + at).c_str(), n, 0);
        rows.push_back({"SETXATTR" + at, FUSE_SETXATTR, n, Args().raw(setxattr_args(1)).str("user.new").raw("1")});
        rows.push_back({"REMOVEXATTR" + at, FUSE_REMOVEXATTR, n, Args().str("user.keep")});
    }
    for (uint64_t parent : {kRoot, dir}) {
        std::string at = " in node " + std::to_string(parent);
        for (uint32_t flags : {uint32_t{O_RDWR}, uint32_t{O_RDONLY}, uint32_t{O_WRONLY | O_EXCL}}) {
            fuse_create_in cr{flags, S_IFREG | 0644, 0, 0};
            rows.push_back({"CREATE new" + at, FUSE_CREATE, parent, Args().obj(cr).str("new")});
            rows.push_back({"CREATE existing" + at, FUSE_CREATE, parent, Args().obj(cr).str(parent == kRoot ? "file" : "inner")});
            rows.push_back({"TMPFILE" + at, FUSE_TMPFILE, parent, Args().obj(cr).str("")});
        }
        for (uint32_t mode : {uint32_t{S_IFREG | 0644}, uint32_t{S_IFIFO | 0644}, uint32_t{S_IFSOCK | 0644},
                              uint32_t{S_IFCHR | 0600}, uint32_t{S_IFBLK | 0600}}) {
            fuse_mknod_in mn{mode, 0x0103, 0, 0};
            rows.push_back({"MKNOD " + std::to_string(mode) + at, FUSE_MKNOD, parent, Args().obj(mn).str("node")});
        }
        fuse_mkdir_in mk{0755, 0};
        rows.push_back({"MKDIR" + at, FUSE_MKDIR, parent, Args().obj(mk).str("newdir")});
        rows.push_back({"SYMLINK" + at, FUSE_SYMLINK, parent, Args().str("newlink").str("file")});
        fuse_link_in ln{file};
        rows.push_back({"LINK" + at, FUSE_LINK, parent, Args().obj(ln).str("hard")});
    }
    rows.push_back({"UNLINK file", FUSE_UNLINK, kRoot, Args().str("file")});
    rows.push_back({"UNLINK link", FUSE_UNLINK, kRoot, Args().str("link")});
    rows.push_back({"UNLINK fifo", FUSE_UNLINK, kRoot, Args().str("fifo")});
    rows.push_back({"UNLINK missing", FUSE_UNLINK, kRoot, Args().str("missing")});
    rows.push_back({"RMDIR empty", FUSE_RMDIR, kRoot, Args().str("empty")});
    fuse_rename_in rn{dir};
    rows.push_back({"RENAME", FUSE_RENAME, kRoot, Args().obj(rn).str("file").str("moved")});
    for (uint32_t flags : {0u, uint32_t{RENAME_NOREPLACE}, uint32_t{RENAME_EXCHANGE}, uint32_t{RENAME_WHITEOUT}}) {
        fuse_rename2_in rn2{kRoot, flags, 0};
        rows.push_back({"RENAME2 flags " + std::to_string(flags), FUSE_RENAME2, kRoot,
                        Args().obj(rn2).str("file").str(flags == RENAME_EXCHANGE ? "link" : "moved")});
    }
    fuse_write_in wr{fh, 0, 5, 0, 0, 0, 0};
    rows.push_back({"WRITE", FUSE_WRITE, file, Args().obj(wr).raw("XXXXX")});
    wr.offset = 1000;
    rows.push_back({"WRITE past the end", FUSE_WRITE, file, Args().obj(wr).raw("XXXXX")});
    for (uint32_t mode : {0u, uint32_t{FALLOC_FL_KEEP_SIZE}, uint32_t{FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE},
                          uint32_t{FALLOC_FL_ZERO_RANGE}}) {
        fuse_fallocate_in fa{fh, 0, 4096, mode, 0};
        rows.push_back({"FALLOCATE mode " + std::to_string(mode), FUSE_FALLOCATE, file, Args().obj(fa)});
    }
    fuse_copy_file_range_in cf{fh, 0, file, fh, 100, 5, 0};
    rows.push_back({"COPY_FILE_RANGE", FUSE_COPY_FILE_RANGE, file, Args().obj(cf)});
    for (uint32_t flags : {uint32_t{O_WRONLY}, uint32_t{O_RDWR}, uint32_t{O_RDONLY | O_TRUNC}, uint32_t{O_WRONLY | O_TRUNC},
                           uint32_t{O_RDONLY | O_APPEND}, uint32_t{O_WRONLY | O_APPEND}, uint32_t{O_RDONLY | O_CREAT},
                           uint32_t{O_RDWR | O_CREAT | O_EXCL}}) {
        fuse_open_in op{flags, 0};
        rows.push_back({"OPEN flags " + std::to_string(flags), FUSE_OPEN, file, Args().obj(op)});
    }
    fuse_access_in ac{W_OK, 0};
    rows.push_back({"ACCESS W_OK", FUSE_ACCESS, file, Args().obj(ac)});
    ac.mask = R_OK | W_OK;
    rows.push_back({"ACCESS R_OK|W_OK on a dir", FUSE_ACCESS, dir, Args().obj(ac)});

    for (const Row& r : rows) {
        CAPTURE(r.what);
        for (uint32_t uid : {0u, 1000u}) {
            c.uid = c.gid = uid;
            CHECK(c.call(r.opcode, r.node, r.args).error() == EROFS);
        }
    }
    c.uid = c.gid = 0;
    CHECK(s->stats().inodes == inodes);
    CHECK(s->stats().handles == handles);

    // Looking is fine.
    CHECK(c.read(file, fh, 0, 100).text() == "read only content");
    fuse_flush_in fl{fh, 0, 0, 0};
    CHECK(c.call(FUSE_FLUSH, file, Args().obj(fl)).error() == 0);
    fuse_fsync_in fs{fh, 0, 0};
    CHECK(c.call(FUSE_FSYNC, file, Args().obj(fs)).error() == 0);
    fuse_lseek_in ls{fh, 0, SEEK_DATA, 0};
    CHECK(c.call(FUSE_LSEEK, file, Args().obj(ls)).error() == 0);
    CHECK(c.read(dir, dfh, 0, 4096, FUSE_READDIRPLUS).error() == 0);
    CHECK(c.call(FUSE_READLINK, link).text() == "file");
    fuse_getxattr_in gx{64, 0};
    CHECK(c.call(FUSE_GETXATTR, file, Args().obj(gx).str("user.keep")).text() == "v");
    CHECK(c.call(FUSE_LISTXATTR, file, Args().obj(gx)).error() == 0);
    CHECK(c.call(FUSE_STATFS, kRoot).error() == 0);
    ac.mask = R_OK;
    CHECK(c.call(FUSE_ACCESS, file, Args().obj(ac)).error() == 0);
    CHECK(c.release(file, fh).error() == 0);
    CHECK(c.release(dir, dfh, FUSE_RELEASEDIR).error() == 0);
    CHECK(c.open(fifo, O_RDONLY).error() == ENXIO);  // still never opened, read-only or not

    s.reset();
    auto after = snapshot(d.path());
    CHECK(after.size() == before.size());
    for (const auto& entry : before) {
        CAPTURE(entry.first);
        CHECK(after[entry.first] == entry.second);
    }
}
