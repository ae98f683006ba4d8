// krunlet-fsconform: the transcript and the recording helpers every sequence uses.
//
// The transcript is the whole point of the program: the integration test runs the same
// sequence directly on a host directory and inside a microVM on a virtio-fs directory of the
// same filesystem, and requires the two transcripts to be identical. So every line must
//   - depend only on what the filesystem did (never on pids, fd numbers, st_dev, raw inode
//     numbers, the clock, or the directory's absolute path), and
//   - be printed whatever the earlier results were: a failed open still yields the following
//     write line (as "-1 EBADF"), so the two transcripts stay line-aligned and a difference
//     shows up as one differing line, not as a shifted tail.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"

namespace fsconform {

using krunlet::UniqueFd;

// Which optional stat fields a stat line shows.
struct StatFields {
    bool blocks = false;  // st_blocks: only where the sequence controls allocation
    bool mtime = false;   // st_mtime: only after the sequence set it explicitly
    bool atime = false;   // st_atime: likewise (reads change it differently through FUSE)
};

// The name errno has in <errno.h> ("ENOENT"), or "E<number>".
std::string errno_name(int e);
// "reg 0644 nlink=1 uid=0 gid=0 size=11" (+ " blocks=N", " rdev=M:m", times as asked).
std::string format_stat(const struct stat& st, StatFields f = {});
// "1100000000.500000000"
std::string format_time(const struct timespec& t);
// A short, printable rendering of bytes: "\"hello\"" for up to 64 printable bytes, else
// "len=N fnv=HEX zero=yes|no".
std::string format_bytes(const void* data, size_t n);
// 64-bit FNV-1a.
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);
std::string hex64(uint64_t v);

class Ctx {
public:
    explicit Ctx(bool root, bool progress = false) : root_(root), progress_(progress) {}

    bool is_root() const { return root_; }
    size_t calls() const { return calls_; }

    void section(std::string_view name);
    // With --progress: "krunlet-fsconform: +12.34 s what" on stderr (never in the transcript).
    void progress(std::string_view what) const;
    // A line that states a computed fact ("same_ino(a,b) = yes").
    void note(std::string line);

    // Runs `f` (a system call returning -1 and errno on failure) and records
    // "what = <result>" or "what = -1 ENAME". Returns the call's value.
    template <class F>
    long call(std::string_view what, F&& f) {
        errno = 0;
        long rc = static_cast<long>(f());
        int e = errno;
        record(what, rc, e, false);
        return rc;
    }
    // The same for calls that create a descriptor: success prints as "fd" (numbers are
    // the process's business), and the descriptor comes back owned.
    template <class F>
    UniqueFd open(std::string_view what, F&& f) {
        errno = 0;
        int fd = static_cast<int>(f());
        int e = errno;
        record(what, fd, e, true);
        return UniqueFd(fd);
    }

    // stat/lstat of a path, fstat of a descriptor: one line each, or the error.
    void stat(std::string_view path, StatFields f = {});
    void lstat(std::string_view path, StatFields f = {});
    void fstat(std::string_view label, int fd, StatFields f = {});
    // pread of up to `len` bytes at `off`: "pread(label,len@off) = n <bytes>".
    void pread(std::string_view label, int fd, size_t len, off_t off);
    // The whole content of a file: size and format_bytes.
    void content(std::string_view path);
    // Sorted listing of a directory: "ls(dir) = .:d ..:d a:r b:l" (names with d_type).
    void listing(std::string_view dir);

    // Inode identity as relations, never as numbers.
    void same_ino(std::string_view a, std::string_view b);         // both names, now
    ino_t ino_of(std::string_view path) const;                     // silent; 0 on error
    void ino_is(std::string_view path, ino_t was, std::string_view was_label);

    std::string take() { return std::move(out_); }
    // The text so far (for a forked child to hand its lines to the parent).
    const std::string& text() const { return out_; }
    void append_raw(std::string_view text);

private:
    void record(std::string_view what, long rc, int err, bool is_fd);
    void stat_line(std::string_view op, std::string_view path, int rc, int err, const struct stat& st,
                   StatFields f);

    bool root_;
    bool progress_;  // name each section on stderr as it starts (to find a hang)
    std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
    size_t calls_ = 0;
    std::string out_;
};

// Creates `path` (O_CREAT|O_EXCL|O_WRONLY) holding `data` and closes it; one line,
// "mkfile(path,N) = 0" or the first error.
void make_file(Ctx& c, std::string_view path, std::string_view data, mode_t mode = 0644);

// The sequences (conform_*.cpp). Each starts with its own section line and leaves its
// objects in place (the final tree dump shows them).
void seq_files(Ctx& c);
void seq_rename(Ctx& c);
void seq_links(Ctx& c);
void seq_symlinks(Ctx& c);
void seq_modes(Ctx& c);
void seq_times(Ctx& c);
void seq_xattrs(Ctx& c);
void seq_dirs_nodes(Ctx& c);
void seq_locks(Ctx& c);
void seq_sparse(Ctx& c);
void seq_tmpfile(Ctx& c);
void seq_permissions(Ctx& c);
void seq_many_files(Ctx& c, int count);
void seq_tree(Ctx& c);

// Fixtures created as root before the privileges are dropped (conform_meta.cpp).
void prepare_root_fixtures(Ctx& c);

}  // namespace fsconform
