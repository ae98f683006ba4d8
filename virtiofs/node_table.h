// The passthrough backend's tables: inodes (nodeid → O_PATH fd) and open handles (fh → fd).
//
// Both are guarded by their own mutex, held only for map and field updates, never across a
// system call. Entries are shared_ptrs so a request that found an inode or handle keeps
// its fd open even if a concurrent FORGET or RELEASE removes the entry meanwhile.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace krunlet::fs {

// One host object the guest has looked up, keyed by (st_dev, st_ino, mount id): two bind
// mounts of one directory are two inodes (mounts.h).
struct Inode;
using InodeRef = std::shared_ptr<Inode>;

// Where an inode that is not open yet can be found: a name in an open directory.
struct PendingName {
    InodeRef parent;
    std::string name;  // one validated component
};

struct Inode {
    // O_PATH | O_NOFOLLOW: names the object, can't do I/O on it. Invalid while the inode is
    // registered but not opened (see InodeTable::add_unopened); written once, under the
    // table's mutex, and read only after InodeTable::get() reported the inode open.
    UniqueFd fd;
    std::unique_ptr<PendingName> pending;  // set exactly while `fd` is invalid; table mutex
    uint64_t nodeid = 0;
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t mnt_id = 0;
    mode_t type = 0;       // S_IFMT bits; an inode never changes type
    // The root of a mount the guest may not enter (Mounts::may_enter): served as an empty
    // directory that can't be changed; `fd` is never used for anything but its attributes.
    bool refused_mount = false;
    uint64_t nlookup = 0;  // guarded by InodeTable's mutex
};

// What identifies an object to the table.
struct InodeKey {
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t mnt_id = 0;
    bool operator==(const InodeKey&) const = default;
};

class InodeTable {
public:
    InodeTable(size_t max_inodes, uint64_t first_nodeid) : max_(max_inodes), next_id_(first_nodeid) {}

    // Installs the root (nodeid 1). Its lookup count is never lowered: the guest can't forget it.
    void set_root(UniqueFd fd, const struct stat& st, uint64_t mnt_id);
    InodeRef root() const { return root_; }

    // nullptr when the guest names a node it never looked up (or already forgot). When the
    // inode is not open yet and `where` is given, *where receives where to open it (else
    // where->parent stays null).
    InodeRef get(uint64_t nodeid, PendingName* where = nullptr) const;

    // Counts one lookup of an object found by a stat of `name` in `parent`, without opening
    // it: a READDIRPLUS of a fresh tree then costs one statx per entry instead of an open and
    // a statx, and the guest usually never uses most entries. The first request that needs
    // the inode's fd opens it by name (PassthroughFs::any_node) and adopt()s the fd. If the
    // object is already known, that entry gains the reference.
    Result<InodeRef> add_unopened(const struct stat& st, uint64_t mnt_id, InodeRef parent, std::string name);
    // Gives an unopened inode its O_PATH fd (ignored, and `fd` closed, if it has one already).
    void adopt(const InodeRef& node, UniqueFd fd);

    // Counts one lookup of the object `fd` (an O_PATH fd) refers to. If the object is already
    // known, that entry gains the reference and `fd` is closed (or adopted, if that entry is
    // not open yet); otherwise `fd` becomes a new entry (marked `refused_mount` as asked).
    // ENFILE when the table is full.
    Result<InodeRef> add_lookup(UniqueFd fd, const struct stat& st, uint64_t mnt_id, bool refused_mount = false);

    // Counts one lookup of an object that is already in the table, found by its key without
    // opening it; nullptr if it isn't known (then the caller opens it and uses add_lookup).
    // The lookup found it as `name` in `parent`: if it is not open yet, that is where it will
    // be opened from (it may have been renamed since it was registered).
    InodeRef ref_existing(const InodeKey& key, const InodeRef& parent, std::string_view name);
    // The object `key` is now `name` in `parent` (a rename): no reference is counted.
    void moved(const InodeKey& key, const InodeRef& parent, std::string_view name);
    // Whether `key` is in the table (no reference is taken).
    bool contains(const InodeKey& key) const;

    // Drops `n` lookups (clamped); the entry goes when none are left (then true). Unknown ids
    // are ignored, as the protocol gives FORGET no reply to carry an error.
    bool forget(uint64_t nodeid, uint64_t n);

    // One live, open inode per filesystem (st_dev) that can be reopened, preferring
    // directories; refused mounts, symlinks and special files are skipped. For SYNCFS.
    std::vector<InodeRef> one_per_device() const;

    // Forgets everything but the root (DESTROY).
    void clear();
    size_t size() const;

private:
    struct KeyHash {
        size_t operator()(const InodeKey& k) const {
            return std::hash<uint64_t>()((k.ino * 0x9e3779b97f4a7c15ull) ^ k.dev ^ (k.mnt_id << 40));
        }
    };
    static InodeKey key_of(const Inode& n) { return InodeKey{n.dev, n.ino, n.mnt_id}; }
    // With mu_ held: point an unopened `n` at `name` in `parent`; returns what it replaced,
    // for the caller to drop after the lock.
    static std::unique_ptr<PendingName> repoint(Inode& n, const InodeRef& parent, std::string_view name);

    mutable std::mutex mu_;
    size_t max_;
    uint64_t next_id_;
    InodeRef root_;
    std::unordered_map<uint64_t, InodeRef> by_id_;
    std::unordered_map<InodeKey, InodeRef, KeyHash> by_key_;
};

// Readdir position of an open directory. Entries are read into a small per-call buffer; when a
// reply fills up, the directory fd is seeked back to the first entry not handed out, so the
// fd's position always equals `cursor` and an open directory holds no buffer between calls.
struct DirStream {
    std::mutex mu;        // one READDIR at a time per handle
    uint64_t cursor = 0;  // the directory offset of the next entry to hand out
    // getdents64 records read from the fd but not handed out (the reply was full). They are
    // kept rather than re-read after a seek back: on tmpfs a cookie is an index, and seeking
    // to it after the guest deleted earlier entries would skip live ones.
    std::vector<char> pending;
    size_t pending_pos = 0;
    uint64_t empty_ino = 0;  // st_ino of a refused mount point (its handle has no fd)
};

struct Handle {
    UniqueFd fd;                     // opened for I/O (regular file) or reading (directory);
                                     // invalid for a refused mount point's directory
    std::unique_ptr<DirStream> dir;  // set for directories only
    std::atomic<bool> flocked{false};  // a flock(2) lock was taken on fd (host lock policy)
};
using HandleRef = std::shared_ptr<Handle>;

class HandleTable {
public:
    explicit HandleTable(size_t max_handles) : max_(max_handles) {}

    // ENFILE when the table is full.
    Result<uint64_t> add(HandleRef h);
    // Counts one descriptor that is not a handle (a lock owner's, locks.h) against the same
    // cap, so the guest can't open more host fds through locks than through handles.
    Result<void> reserve();
    void unreserve();
    HandleRef get(uint64_t fh) const;
    // Removes and returns the handle (nullptr if unknown); its fd closes when the last
    // in-flight request using it is done.
    HandleRef remove(uint64_t fh);
    void clear();
    size_t size() const;

private:
    mutable std::mutex mu_;
    size_t max_;
    size_t reserved_ = 0;
    uint64_t next_fh_ = 1;
    std::unordered_map<uint64_t, HandleRef> by_fh_;
};

}  // namespace krunlet::fs
