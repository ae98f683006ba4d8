// POSIX lock owners for the host lock policy (LockPolicy::Host, passthrough_locks.cpp).
//
// A POSIX (fcntl) lock belongs to a process — FUSE sends its lock owner id — not to an open
// file: a forked child that shares its parent's descriptor (one FUSE handle) is a different
// owner, and a process that opened a file twice is one owner. So locks can't be taken on the
// handle's fd. Instead every (inode, owner) pair gets a descriptor of its own, opened only to
// carry that owner's OFD locks (F_OFD_SETLK): OFD locks belong to the open file description,
// so each owner's locks conflict with every other owner's, and with the host's own locks.
// FLUSH (the owner closing the file) drops the pair; closing its descriptor releases every
// lock the owner held on the file, as close(2) does for POSIX locks. A pair whose first lock
// attempt failed goes at once, so a guest polling a lock it can't get keeps no descriptor.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "virtiofs/node_table.h"

namespace krunlet::fs {

struct LockOwner {
    uint64_t owner = 0;
    std::mutex mu;             // serialises this owner's lock calls; guards every field below
    UniqueFd fd;               // reopened from a guest handle of this inode; carries OFD locks only
    int access = O_RDONLY;     // O_RDONLY / O_WRONLY / O_RDWR: which lock types fd can hold
    uint32_t pid = 0;          // guest tgid of the owner's latest lock (for GETLK replies)
    bool may_hold = false;     // false only while the owner surely holds no lock on fd
    bool dropped = false;      // removed from the table: look the owner up again
};
using LockOwnerRef = std::shared_ptr<LockOwner>;

class LockTable {
public:
    // Every owner descriptor is counted against `budget`'s cap (ENFILE past it).
    explicit LockTable(HandleTable& budget) : budget_(budget) {}
    ~LockTable();
    LockTable(const LockTable&) = delete;
    LockTable& operator=(const LockTable&) = delete;

    LockOwnerRef find(uint64_t nodeid, uint64_t owner) const;
    // Installs `fd` as the owner's descriptor for `nodeid`. If the pair exists meanwhile, that
    // entry is returned and `fd` is closed. ENFILE when the budget is spent.
    Result<LockOwnerRef> insert(uint64_t nodeid, uint64_t owner, UniqueFd fd, int access);
    // The other owners with a descriptor on `nodeid`.
    std::vector<LockOwnerRef> others(uint64_t nodeid, uint64_t owner) const;

    void drop(uint64_t nodeid, uint64_t owner);  // FLUSH
    void drop_node(uint64_t nodeid);             // the inode was forgotten
    void clear();                                // DESTROY
    size_t size() const;

private:
    void unreserve_n(size_t n);

    HandleTable& budget_;
    mutable std::mutex mu_;
    size_t count_ = 0;
    std::unordered_map<uint64_t, std::unordered_map<uint64_t, LockOwnerRef>> by_node_;
};

}  // namespace krunlet::fs
