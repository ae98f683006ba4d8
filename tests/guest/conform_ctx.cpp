// krunlet-fsconform: transcript formatting and the recording helpers (conform_ctx.h).
#include "conform_ctx.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

namespace fsconform {

std::string errno_name(int e) {
    if (e == 0) return "E0";
    // glibc ≥ 2.32; the static binary carries its own copy, so host and guest agree.
    if (const char* n = ::strerrorname_np(e)) return n;
    return "E" + std::to_string(e);
}

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

std::string format_time(const struct timespec& t) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
    return buf;
}

std::string format_stat(const struct stat& st, StatFields f) {
    const char* type = "unknown";
    switch (st.st_mode & S_IFMT) {
        case S_IFREG: type = "reg"; break;
        case S_IFDIR: type = "dir"; break;
        case S_IFLNK: type = "lnk"; break;
        case S_IFIFO: type = "fifo"; break;
        case S_IFSOCK: type = "sock"; break;
        case S_IFCHR: type = "chr"; break;
        case S_IFBLK: type = "blk"; break;
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s %04o nlink=%lu uid=%u gid=%u size=%lld", type,
                  static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned long>(st.st_nlink),
                  static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_gid),
                  static_cast<long long>(st.st_size));
    std::string s = buf;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
        s += " rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    if (f.blocks) s += " blocks=" + std::to_string(st.st_blocks);
    if (f.atime) s += " atime=" + format_time(st.st_atim);
    if (f.mtime) s += " mtime=" + format_time(st.st_mtim);
    return s;
}

std::string format_bytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    bool printable = n <= 64 && std::all_of(p, p + n, [](uint8_t b) { return b >= 0x20 && b < 0x7f && b != '"'; });
    if (printable) return "\"" + std::string(reinterpret_cast<const char*>(p), n) + "\"";
    bool zero = std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
    return "len=" + std::to_string(n) + " fnv=" + hex64(fnv1a(p, n)) + " zero=" + (zero ? "yes" : "no");
}

void Ctx::progress(std::string_view what) const {
    if (!progress_) return;
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    std::fprintf(stderr, "krunlet-fsconform: +%.2f s %.*s\n", t, static_cast<int>(what.size()), what.data());
}

void Ctx::section(std::string_view name) {
    progress("section " + std::string(name));
    out_ += "## ";
    out_ += name;
    out_ += '\n';
}

void Ctx::note(std::string line) {
    out_ += line;
    out_ += '\n';
}

void Ctx::append_raw(std::string_view text) { out_ += text; }

void Ctx::record(std::string_view what, long rc, int err, bool is_fd) {
    ++calls_;
    out_ += what;
    out_ += " = ";
    if (rc < 0) {
        out_ += std::to_string(rc) + " " + errno_name(err);
    } else if (is_fd) {
        out_ += "fd";
    } else {
        out_ += std::to_string(rc);
    }
    out_ += '\n';
}

void Ctx::stat_line(std::string_view op, std::string_view path, int rc, int err, const struct stat& st,
                    StatFields f) {
    ++calls_;
    out_ += op;
    out_ += '(';
    out_ += path;
    out_ += ") = ";
    out_ += rc == 0 ? format_stat(st, f) : "-1 " + errno_name(err);
    out_ += '\n';
}

void Ctx::stat(std::string_view path, StatFields f) {
    struct stat st {};
    std::string p(path);
    int rc = ::stat(p.c_str(), &st);
    stat_line("stat", path, rc, errno, st, f);
}

void Ctx::lstat(std::string_view path, StatFields f) {
    struct stat st {};
    std::string p(path);
    int rc = ::lstat(p.c_str(), &st);
    stat_line("lstat", path, rc, errno, st, f);
}

void Ctx::fstat(std::string_view label, int fd, StatFields f) {
    struct stat st {};
    int rc = ::fstat(fd, &st);
    stat_line("fstat", label, rc, errno, st, f);
}

void Ctx::pread(std::string_view label, int fd, size_t len, off_t off) {
    std::vector<uint8_t> buf(len);
    ssize_t n = ::pread(fd, buf.data(), len, off);
    int e = errno;
    ++calls_;
    std::string line = "pread(" + std::string(label) + "," + std::to_string(len) + "@" + std::to_string(off) + ") = ";
    if (n < 0)
        line += "-1 " + errno_name(e);
    else
        line += std::to_string(n) + " " + format_bytes(buf.data(), static_cast<size_t>(n));
    note(std::move(line));
}

void Ctx::content(std::string_view path) {
    std::string p(path);
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    int e = errno;
    ++calls_;
    std::string line = "content(" + p + ") = ";
    if (!fd.valid()) {
        note(line + "-1 " + errno_name(e));
        return;
    }
    std::string data;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
    if (n < 0) {
        note(line + "read -1 " + errno_name(errno));
        return;
    }
    note(line + format_bytes(data.data(), data.size()));
}

void Ctx::listing(std::string_view dir) {
    std::string p(dir);
    ++calls_;
    std::string line = "ls(" + p + ") =";
    DIR* d = ::opendir(p.c_str());
    if (d == nullptr) {
        note(line + " -1 " + errno_name(errno));
        return;
    }
    std::vector<std::string> names;
    errno = 0;
    while (const struct dirent* de = ::readdir(d)) {
        const char* t = "?";
        switch (de->d_type) {
            case DT_REG: t = "r"; break;
            case DT_DIR: t = "d"; break;
            case DT_LNK: t = "l"; break;
            case DT_FIFO: t = "p"; break;
            case DT_SOCK: t = "s"; break;
            case DT_CHR: t = "c"; break;
            case DT_BLK: t = "b"; break;
            case DT_UNKNOWN: t = "u"; break;
        }
        names.push_back(std::string(de->d_name) + ":" + t);
    }
    int e = errno;
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) line += " " + n;
    if (e != 0) line += " (readdir -1 " + errno_name(e) + ")";
    note(std::move(line));
}

ino_t Ctx::ino_of(std::string_view path) const {
    struct stat st {};
    std::string p(path);
    if (::lstat(p.c_str(), &st) != 0) return 0;
    return st.st_ino;
}

void Ctx::same_ino(std::string_view a, std::string_view b) {
    ino_t x = ino_of(a), y = ino_of(b);
    ++calls_;
    std::string r = (x == 0 || y == 0) ? "error" : (x == y ? "yes" : "no");
    note("same_ino(" + std::string(a) + "," + std::string(b) + ") = " + r);
}

void Ctx::ino_is(std::string_view path, ino_t was, std::string_view was_label) {
    ino_t now = ino_of(path);
    ++calls_;
    std::string r = (now == 0 || was == 0) ? "error" : (now == was ? "yes" : "no");
    note("ino(" + std::string(path) + ")==ino(" + std::string(was_label) + ") = " + r);
}

void make_file(Ctx& c, std::string_view path, std::string_view data, mode_t mode) {
    std::string p(path);
    std::string what = "mkfile(" + p + "," + std::to_string(data.size()) + ")";
    c.call(what, [&]() -> long {
        UniqueFd fd(::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode));
        if (!fd.valid()) return -1;
        size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
            if (n <= 0) return -1;
            done += static_cast<size_t>(n);
        }
        return ::close(fd.release());
    });
}

}  // namespace fsconform
