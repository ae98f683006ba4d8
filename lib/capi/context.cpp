#include "capi/context.h"

#include <cerrno>
#include <cstdio>

namespace krunlet::capi {

void log_at(uint32_t level, const std::string& msg) {
    if (ContextTable::instance().log_level() >= level) std::fprintf(stderr, "krunlet: %s\n", msg.c_str());
}

ContextTable& ContextTable::instance() {
    static ContextTable table;  // the one table of the C API
    return table;
}

int32_t ContextTable::create(std::unique_ptr<Context> ctx) {
    std::lock_guard lock(mu_);
    if (ctxs_.size() >= 1024) return -ENOMEM;
    uint32_t id = next_id_++ & 0x7fffffff;
    ctxs_[id] = std::move(ctx);
    return int32_t(id);
}

std::unique_ptr<Context> ContextTable::take(uint32_t id) {
    std::lock_guard lock(mu_);
    auto it = ctxs_.find(id);
    if (it == ctxs_.end()) return nullptr;
    auto ctx = std::move(it->second);
    ctxs_.erase(it);
    return ctx;
}

uint32_t ContextTable::log_level() const {
    std::lock_guard lock(mu_);
    return log_level_;
}

void ContextTable::set_log_level(uint32_t level) {
    std::lock_guard lock(mu_);
    log_level_ = level;
}

}  // namespace krunlet::capi
