#include "virtiofs/lock_table.h"

#include <utility>

namespace krunlet::fs {

LockTable::~LockTable() { clear(); }

LockOwnerRef LockTable::find(uint64_t nodeid, uint64_t owner) const {
    std::lock_guard lock(mu_);
    auto n = by_node_.find(nodeid);
    if (n == by_node_.end()) return nullptr;
    auto o = n->second.find(owner);
    return o == n->second.end() ? nullptr : o->second;
}

Result<LockOwnerRef> LockTable::insert(uint64_t nodeid, uint64_t owner, UniqueFd fd, int access) {
    UniqueFd spare;  // closed after the lock is released
    std::lock_guard lock(mu_);
    auto& owners = by_node_[nodeid];
    auto it = owners.find(owner);
    if (it != owners.end()) {
        spare = std::move(fd);
        return it->second;
    }
    if (auto r = budget_.reserve(); !r) {
        if (owners.empty()) by_node_.erase(nodeid);
        return r.error();
    }
    auto entry = std::make_shared<LockOwner>();
    entry->owner = owner;
    entry->fd = std::move(fd);
    entry->access = access;
    owners.emplace(owner, entry);
    ++count_;
    return entry;
}

std::vector<LockOwnerRef> LockTable::others(uint64_t nodeid, uint64_t owner) const {
    std::vector<LockOwnerRef> out;
    std::lock_guard lock(mu_);
    auto n = by_node_.find(nodeid);
    if (n == by_node_.end()) return out;
    for (const auto& [id, entry] : n->second)
        if (id != owner) out.push_back(entry);
    return out;
}

void LockTable::drop(uint64_t nodeid, uint64_t owner) {
    LockOwnerRef gone;
    {
        std::lock_guard lock(mu_);
        auto n = by_node_.find(nodeid);
        if (n == by_node_.end()) return;
        auto o = n->second.find(owner);
        if (o == n->second.end()) return;
        gone = std::move(o->second);
        n->second.erase(o);
        if (n->second.empty()) by_node_.erase(n);
        --count_;
    }
    budget_.unreserve();
}

void LockTable::drop_node(uint64_t nodeid) {
    std::unordered_map<uint64_t, LockOwnerRef> gone;
    {
        std::lock_guard lock(mu_);
        auto n = by_node_.find(nodeid);
        if (n == by_node_.end()) return;
        gone.swap(n->second);
        by_node_.erase(n);
        count_ -= gone.size();
    }
    unreserve_n(gone.size());
}

void LockTable::clear() {
    std::unordered_map<uint64_t, std::unordered_map<uint64_t, LockOwnerRef>> gone;
    size_t n;
    {
        std::lock_guard lock(mu_);
        gone.swap(by_node_);
        n = std::exchange(count_, 0);
    }
    unreserve_n(n);
}

size_t LockTable::size() const {
    std::lock_guard lock(mu_);
    return count_;
}

void LockTable::unreserve_n(size_t n) {
    for (size_t i = 0; i < n; ++i) budget_.unreserve();
}

}  // namespace krunlet::fs
