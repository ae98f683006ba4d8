// Server: wires the layers together and validates the request envelope.
#include "virtiofs/server.h"

#include <linux/fuse.h>

#include <cstring>
#include <new>

#include "virtiofs/dispatcher.h"
#include "virtiofs/fuse_wire.h"
#include "virtiofs/passthrough.h"
#include "virtiofs/virtual_entries.h"

namespace krunlet::fs {

struct Server::Parts {
    PassthroughFs* passthrough = nullptr;  // owned by `fs`
    std::unique_ptr<VirtualEntriesFs> fs;
    std::unique_ptr<Dispatcher> dispatcher;
};

Result<std::unique_ptr<Server>> Server::create(ServerConfig cfg) {
    try {
        return create_impl(std::move(cfg));
    } catch (const std::bad_alloc&) {
        return make_error(ENOMEM, "virtio-fs: out of memory while creating the server");
    }
}

Result<std::unique_ptr<Server>> Server::create_impl(ServerConfig cfg) {
    DispatchConfig dc;
    dc.read_only = cfg.read_only;
    dc.cache = cfg.cache;
    dc.locks = cfg.locks;
    dc.entry_timeout = cfg.entry_timeout.value_or(default_entry_timeout(cfg.cache));
    dc.attr_timeout = cfg.attr_timeout.value_or(default_attr_timeout(cfg.cache));
    for (auto t : {dc.entry_timeout, dc.attr_timeout}) {
        if (t < std::chrono::nanoseconds{0} || t > kMaxCacheTimeout)
            return make_error(EINVAL, "virtio-fs: entry_timeout/attr_timeout must lie between 0 and 365 days; "
                                      "leave them unset for the cache policy's default");
    }

    PassthroughConfig pc;
    pc.root_dir = cfg.root_dir;
    pc.read_only = cfg.read_only;
    pc.host_locks = cfg.locks == LockPolicy::Host;
    pc.max_inodes = cfg.max_inodes;
    pc.max_handles = cfg.max_handles;
    auto backend = PassthroughFs::create(pc);
    if (!backend) return backend.error();

    auto parts = std::make_unique<Parts>();
    parts->passthrough = backend->get();
    parts->fs = std::make_unique<VirtualEntriesFs>(std::move(*backend), cfg.init_binary);
    parts->dispatcher = std::make_unique<Dispatcher>(*parts->fs, dc);

    std::unique_ptr<Server> s(new Server());
    s->p_ = std::move(parts);
    return s;
}

Server::~Server() = default;

size_t Server::handle(std::span<const uint8_t> in, std::span<const struct iovec> out,
                      std::span<const struct iovec> in_tail) {
    // The only exception the layers below can raise is std::bad_alloc (table inserts, xattr
    // buffers); it must not unwind into the device's event loop.
    try {
        return handle_impl(in, out, in_tail);
    } catch (const std::bad_alloc&) {
        fuse_in_header h{};
        if (in.size() >= sizeof(h)) std::memcpy(&h, in.data(), sizeof(h));
        if (h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET || h.opcode == FUSE_INTERRUPT) return 0;
        ReplyWriter w(out);
        return w.finish(h.unique, ENOMEM);
    }
}

size_t Server::handle_impl(std::span<const uint8_t> in, std::span<const struct iovec> out,
                           std::span<const struct iovec> in_tail) {
    ReplyWriter w(out);
    fuse_in_header h{};
    if (in.size() < sizeof(h)) return w.finish(0, EINVAL);  // no header: not even `unique` is known
    std::memcpy(&h, in.data(), sizeof(h));                   // guest-controlled

    const bool no_reply = h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET || h.opcode == FUSE_INTERRUPT;
    auto reject = [&](int err) -> size_t { return no_reply ? 0 : w.finish(h.unique, err); };

    // The envelope must agree with what the device collected: a header that claims another
    // length than the chain carries, or a chain over the size limit, is refused whole.
    size_t total = in.size();
    for (const iovec& v : in_tail) total += v.iov_len;  // each at most 4 GiB (a descriptor)
    if (total > kMaxRequestPayload + sizeof(fuse_in_header)) return reject(EINVAL);
    if (h.len != total) return reject(EINVAL);
    // Extension headers (7.38) trail the arguments; nothing we negotiate produces them, so
    // they are skipped, but only if they fit (and never in a tail, which is payload only).
    size_t ext = size_t{h.total_extlen} * 8;
    size_t body = in.size() - sizeof(h);
    if (ext > body || (ext != 0 && !in_tail.empty())) return reject(EINVAL);

    return p_->dispatcher->dispatch(h, in.subspan(sizeof(h), body - ext), w, in_tail);
}

ServerStats Server::stats() const {
    return ServerStats{p_->passthrough->inode_count(), p_->passthrough->handle_count(),
                       p_->passthrough->lock_owner_count()};
}

}  // namespace krunlet::fs
