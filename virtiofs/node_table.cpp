#include "virtiofs/node_table.h"

#include <cerrno>
#include <utility>

#include "virtiofs/fs_api.h"

namespace krunlet::fs {

void InodeTable::set_root(UniqueFd fd, const struct stat& st, uint64_t mnt_id) {
    auto root = std::make_shared<Inode>();
    root->fd = std::move(fd);
    root->nodeid = kRootNodeId;
    root->dev = st.st_dev;
    root->ino = st.st_ino;
    root->mnt_id = mnt_id;
    root->type = st.st_mode & S_IFMT;
    root->nlookup = 1;
    std::lock_guard lock(mu_);
    root_ = root;
    by_id_[kRootNodeId] = root;
    by_key_[key_of(*root)] = root;
}

InodeRef InodeTable::get(uint64_t nodeid, PendingName* where) const {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(nodeid);
    if (it == by_id_.end()) return nullptr;
    if (where != nullptr && it->second->pending) *where = *it->second->pending;
    return it->second;
}

Result<InodeRef> InodeTable::add_unopened(const struct stat& st, uint64_t mnt_id, InodeRef parent,
                                          std::string name) {
    std::lock_guard lock(mu_);
    InodeKey key{st.st_dev, st.st_ino, mnt_id};
    if (auto it = by_key_.find(key); it != by_key_.end()) {
        if (it->second != root_) ++it->second->nlookup;
        return it->second;
    }
    if (by_id_.size() >= max_) return fail(ENFILE);
    auto node = std::make_shared<Inode>();
    node->pending = std::make_unique<PendingName>(PendingName{std::move(parent), std::move(name)});
    node->nodeid = next_id_++;
    node->dev = st.st_dev;
    node->ino = st.st_ino;
    node->mnt_id = mnt_id;
    node->type = st.st_mode & S_IFMT;
    node->nlookup = 1;
    by_id_.emplace(node->nodeid, node);
    by_key_.emplace(key, node);
    return node;
}

void InodeTable::adopt(const InodeRef& node, UniqueFd fd) {
    std::unique_ptr<PendingName> gone;  // its parent reference drops after the lock
    std::lock_guard lock(mu_);
    if (node->fd.valid()) return;  // `fd` closes on return: someone opened it first
    node->fd = std::move(fd);
    gone = std::move(node->pending);
}

Result<InodeRef> InodeTable::add_lookup(UniqueFd fd, const struct stat& st, uint64_t mnt_id, bool refused_mount) {
    UniqueFd spare;  // closed after the lock is released
    std::unique_ptr<PendingName> pending;  // likewise dropped after it
    InodeRef result;
    {
        std::lock_guard lock(mu_);
        InodeKey key{st.st_dev, st.st_ino, mnt_id};
        auto it = by_key_.find(key);
        if (it != by_key_.end()) {
            result = it->second;
            if (result != root_) ++result->nlookup;
            if (result->fd.valid()) {
                spare = std::move(fd);
            } else {  // registered unopened: this fresh open by name is as good as any
                result->fd = std::move(fd);
                pending = std::move(result->pending);
            }
        } else {
            if (by_id_.size() >= max_) return fail(ENFILE);
            auto node = std::make_shared<Inode>();
            node->fd = std::move(fd);
            node->nodeid = next_id_++;
            node->dev = st.st_dev;
            node->ino = st.st_ino;
            node->mnt_id = mnt_id;
            node->type = st.st_mode & S_IFMT;
            node->refused_mount = refused_mount;
            node->nlookup = 1;
            by_id_.emplace(node->nodeid, node);
            by_key_.emplace(key, node);
            result = std::move(node);
        }
    }
    return result;
}

InodeRef InodeTable::ref_existing(const InodeKey& key, const InodeRef& parent, std::string_view name) {
    std::unique_ptr<PendingName> old;  // dropped after the lock is released
    std::lock_guard lock(mu_);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return nullptr;
    if (it->second != root_) ++it->second->nlookup;
    old = repoint(*it->second, parent, name);
    return it->second;
}

void InodeTable::moved(const InodeKey& key, const InodeRef& parent, std::string_view name) {
    std::unique_ptr<PendingName> old;  // dropped after the lock is released
    std::lock_guard lock(mu_);
    if (auto it = by_key_.find(key); it != by_key_.end()) old = repoint(*it->second, parent, name);
}

std::unique_ptr<PendingName> InodeTable::repoint(Inode& n, const InodeRef& parent, std::string_view name) {
    if (!n.pending || (n.pending->parent == parent && n.pending->name == name)) return nullptr;
    return std::exchange(n.pending, std::make_unique<PendingName>(PendingName{parent, std::string(name)}));
}

bool InodeTable::contains(const InodeKey& key) const {
    std::lock_guard lock(mu_);
    return by_key_.contains(key);
}

bool InodeTable::forget(uint64_t nodeid, uint64_t n) {
    InodeRef dropped;  // its fd closes after the lock is released
    std::lock_guard lock(mu_);
    auto it = by_id_.find(nodeid);
    if (it == by_id_.end() || it->second == root_) return false;
    Inode& node = *it->second;
    node.nlookup = n >= node.nlookup ? 0 : node.nlookup - n;
    if (node.nlookup != 0) return false;
    dropped = std::move(it->second);
    by_id_.erase(it);
    by_key_.erase(key_of(*dropped));
    return true;
}

std::vector<InodeRef> InodeTable::one_per_device() const {
    std::unordered_map<dev_t, InodeRef> pick;
    {
        std::lock_guard lock(mu_);
        for (const auto& [id, n] : by_id_) {
            if (n->refused_mount || n->pending || (n->type != S_IFDIR && n->type != S_IFREG)) continue;
            auto [it, fresh] = pick.emplace(n->dev, n);
            if (!fresh && it->second->type != S_IFDIR && n->type == S_IFDIR) it->second = n;
        }
    }
    std::vector<InodeRef> out;
    out.reserve(pick.size());
    for (auto& [dev, n] : pick) out.push_back(std::move(n));
    return out;
}

void InodeTable::clear() {
    std::unordered_map<uint64_t, InodeRef> old_ids;
    {
        std::lock_guard lock(mu_);
        old_ids.swap(by_id_);
        by_key_.clear();
        if (root_) {
            by_id_[kRootNodeId] = root_;
            by_key_[key_of(*root_)] = root_;
        }
    }
}

size_t InodeTable::size() const {
    std::lock_guard lock(mu_);
    return by_id_.size();
}

Result<uint64_t> HandleTable::add(HandleRef h) {
    std::lock_guard lock(mu_);
    if (by_fh_.size() + reserved_ >= max_) return fail(ENFILE);
    uint64_t fh = next_fh_++;
    by_fh_.emplace(fh, std::move(h));
    return fh;
}

Result<void> HandleTable::reserve() {
    std::lock_guard lock(mu_);
    if (by_fh_.size() + reserved_ >= max_) return fail(ENFILE);
    ++reserved_;
    return {};
}

void HandleTable::unreserve() {
    std::lock_guard lock(mu_);
    if (reserved_ > 0) --reserved_;
}

HandleRef HandleTable::get(uint64_t fh) const {
    std::lock_guard lock(mu_);
    auto it = by_fh_.find(fh);
    return it == by_fh_.end() ? nullptr : it->second;
}

HandleRef HandleTable::remove(uint64_t fh) {
    std::lock_guard lock(mu_);
    auto it = by_fh_.find(fh);
    if (it == by_fh_.end()) return nullptr;
    HandleRef h = std::move(it->second);
    by_fh_.erase(it);
    return h;  // the caller drops it outside the lock
}

void HandleTable::clear() {
    std::unordered_map<uint64_t, HandleRef> old;
    std::lock_guard lock(mu_);
    old.swap(by_fh_);
    // `old` is destroyed after the lock_guard (declared earlier → destroyed later): fds close
    // outside the lock.
}

size_t HandleTable::size() const {
    std::lock_guard lock(mu_);
    return by_fh_.size();
}

}  // namespace krunlet::fs
