// Split virtqueue, device side (virtio 1.2 §2.7).
//
// Ring layout for a queue of n entries (all fields little-endian):
//   descriptor table  16 * n       { le64 addr; le32 len; le16 flags; le16 next; }
//   available ring    6 + 2 * n    { le16 flags; le16 idx; le16 ring[n]; le16 used_event; }
//   used ring         6 + 8 * n    { le16 flags; le16 idx; {le32 id; le32 len} ring[n]; le16 avail_event; }
// The trailing event fields exist only with VIRTIO_F_EVENT_IDX, but the spec
// sizes the areas with them, so activate() requires the full sizes.
//
// Zero-length descriptors: they count toward the chain TTL and toward the
// readable-before-writable order, but carry no bytes, so they are left out of
// readable()/writable() and their address is not checked (nothing is ever
// read or written through it).
//
// Indirect descriptors (§2.7.5.3) are accepted anywhere in a chain (as its
// last descriptor, since INDIRECT together with NEXT is forbidden). The queue
// does not know whether VIRTIO_F_INDIRECT_DESC was negotiated and accepts them
// either way: a table is validated exactly like the direct part.
#include "virtio/queue.h"

// Without the legacy layout helpers, which are C only (void* conversions).
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace krunlet::virtio {

namespace {

// Descriptor flags (§2.7.5).
constexpr uint16_t kDescNext = VRING_DESC_F_NEXT;
constexpr uint16_t kDescWrite = VRING_DESC_F_WRITE;
constexpr uint16_t kDescIndirect = VRING_DESC_F_INDIRECT;
// Available ring flags (§2.7.6).
constexpr uint16_t kAvailNoInterrupt = VRING_AVAIL_F_NO_INTERRUPT;

struct RawDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(RawDesc) == 16);
static_assert(offsetof(RawDesc, addr) == 0 && offsetof(RawDesc, len) == 8 &&
              offsetof(RawDesc, flags) == 12 && offsetof(RawDesc, next) == 14);
constexpr uint64_t kDescSize = sizeof(RawDesc);

constexpr uint64_t kAvailRingOffset = 4;  // after flags + idx
constexpr uint64_t kUsedRingOffset = 4;
constexpr uint64_t kUsedElemSize = 8;

// The rings are little-endian (§2.4 for modern devices). These are no-ops on
// x86 but keep every conversion explicit.
template <class T>
T le_to_host(T v) {
    if constexpr (std::endian::native == std::endian::little) {
        return v;
    } else if constexpr (sizeof(T) == 2) {
        return static_cast<T>(__builtin_bswap16(v));
    } else if constexpr (sizeof(T) == 4) {
        return static_cast<T>(__builtin_bswap32(v));
    } else {
        static_assert(sizeof(T) == 8);
        return static_cast<T>(__builtin_bswap64(v));
    }
}
template <class T>
T host_to_le(T v) {
    return le_to_host(v);  // a byte swap is its own inverse
}

// The index and event fields are shared with a driver running concurrently
// on another CPU, so they are accessed atomically. activate() has checked
// that the host addresses are 2-byte aligned, as atomic_ref requires.
using AtomicLe16 = std::atomic_ref<uint16_t>;
static_assert(AtomicLe16::required_alignment == alignof(uint16_t));
static_assert(AtomicLe16::is_always_lock_free);

uint16_t load_le16(uint8_t* p, std::memory_order order) {
    return le_to_host(AtomicLe16(*reinterpret_cast<uint16_t*>(p)).load(order));
}
void store_le16(uint8_t* p, uint16_t v, std::memory_order order) {
    AtomicLe16(*reinterpret_cast<uint16_t*>(p)).store(host_to_le(v), order);
}

// Read descriptor `index` of a table once, into a local copy: the guest may
// rewrite the table while we look at it, so every field is used from the copy
// and never read twice.
RawDesc read_desc(const uint8_t* table, uint32_t index) {
    RawDesc d;
    std::memcpy(&d, table + kDescSize * index, sizeof d);  // guest-controlled
    d.addr = le_to_host(d.addr);
    d.len = le_to_host(d.len);
    d.flags = le_to_host(d.flags);
    d.next = le_to_host(d.next);
    return d;
}

// §2.7.10: the driver asked to be interrupted once used->idx passes
// `event`; has that happened in the step from `old_idx` to `new_idx`?
bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

Error queue_config_error(const std::string& what) {
    return make_error(EINVAL, "virtio queue: " + what);
}

}  // namespace

const char* to_string(QueueError e) {
    switch (e) {
        case QueueError::NotReady: return "queue used before it was activated";
        case QueueError::AvailIdxJump: return "avail->idx moved more than the queue size ahead";
        case QueueError::HeadOutOfRange: return "avail ring entry is not a valid descriptor index";
        case QueueError::NextOutOfRange: return "descriptor 'next' points past the end of its table";
        case QueueError::ChainTooLong: return "descriptor chain longer than its table (a loop)";
        case QueueError::NestedIndirect: return "indirect descriptor inside an indirect table";
        case QueueError::BadIndirectTable:
            return "indirect table length is zero, not a multiple of 16, or longer than the queue's maximum size";
        case QueueError::IndirectWithNext: return "descriptor has both INDIRECT and NEXT set";
        case QueueError::BufferOutOfRange: return "descriptor buffer is not inside guest RAM";
        case QueueError::ReadableAfterWritable: return "device-readable descriptor after a device-writable one";
        case QueueError::RingOutOfRange: return "ring is not inside guest RAM";
    }
    return "unknown queue error";
}

Error to_error(QueueError e) {
    // EPROTO: the guest driver broke the virtqueue protocol.
    return make_error(EPROTO, std::string("virtio queue: ") + to_string(e) +
                                  " (a guest driver bug; the device needs a reset)");
}

// ---- DescriptorChain ------------------------------------------------------

size_t DescriptorChain::copy_from_readable(size_t offset, std::span<uint8_t> out) const {
    size_t done = 0;
    for (const Buffer& b : readable_) {
        if (done == out.size()) break;
        if (offset >= b.len) {
            offset -= b.len;
            continue;
        }
        size_t n = std::min<size_t>(b.len - offset, out.size() - done);
        std::memcpy(out.data() + done, b.data + offset, n);  // guest-controlled bytes
        done += n;
        offset = 0;
    }
    return done;
}

size_t DescriptorChain::copy_to_writable(size_t offset, std::span<const uint8_t> in) const {
    size_t done = 0;
    for (const Buffer& b : writable_) {
        if (done == in.size()) break;
        if (offset >= b.len) {
            offset -= b.len;
            continue;
        }
        size_t n = std::min<size_t>(b.len - offset, in.size() - done);
        std::memcpy(b.data + offset, in.data() + done, n);
        done += n;
        offset = 0;
    }
    return done;
}

std::vector<struct iovec> DescriptorChain::writable_iovecs() const {
    std::vector<struct iovec> v;
    writable_iovecs(v);
    return v;
}

void DescriptorChain::writable_iovecs(std::vector<struct iovec>& out) const {
    out.clear();
    out.reserve(writable_.size());
    for (const Buffer& b : writable_) out.push_back(iovec{b.data, b.len});
}

// ---- Queue ----------------------------------------------------------------

Queue::Queue(uint16_t max_size) : max_size_(max_size) {
    // QueueNum is write-only on MMIO; until the driver writes it the queue
    // has its maximum size (as on PCI, where queue_size starts at the max).
    config_.size = max_size_;
}

Result<void> Queue::activate(const GuestMemory& mem, bool event_idx) {
    if (active()) return queue_config_error("activated twice; reset the device first");
    const QueueConfig c = config_;  // frozen from here on
    if (!c.ready) return queue_config_error("activated before the driver wrote 1 to QueueReady");
    if (c.size == 0 || (c.size & (c.size - 1)) != 0 || c.size > max_size_) {
        return queue_config_error("size " + std::to_string(c.size) +
                                  " is invalid: the driver must write a power of two between 1 and " +
                                  std::to_string(max_size_) + " to QueueNum (virtio 1.2 §2.7)");
    }
    // Alignment requirements of §2.7 (table "Virtqueue Part Alignment").
    if (c.desc % 16 != 0)
        return queue_config_error("descriptor table at " + hex(c.desc) + " is not 16-byte aligned");
    if (c.avail % 2 != 0)
        return queue_config_error("available ring at " + hex(c.avail) + " is not 2-byte aligned");
    if (c.used % 4 != 0) return queue_config_error("used ring at " + hex(c.used) + " is not 4-byte aligned");

    const uint64_t n = c.size;
    struct Area {
        const char* name;
        uint64_t gpa;
        uint64_t len;
        uint8_t** host;
    } areas[] = {
        {"descriptor table", c.desc, kDescSize * n, &desc_},
        {"available ring", c.avail, 6 + 2 * n, &avail_},
        {"used ring", c.used, 6 + kUsedElemSize * n, &used_},
    };
    uint8_t* hosts[3] = {};
    for (size_t i = 0; i < 3; ++i) {
        hosts[i] = mem.translate(areas[i].gpa, areas[i].len);
        if (hosts[i] == nullptr) {
            return queue_config_error(std::string(to_string(QueueError::RingOutOfRange)) + ": " + areas[i].name +
                                      " [" + hex(areas[i].gpa) + ", +" + std::to_string(areas[i].len) +
                                      ") is not inside one guest RAM region");
        }
        // atomic_ref needs naturally aligned host addresses; guest RAM is
        // page-aligned in the VMM, but GuestMemory::wrap() takes any buffer.
        if (reinterpret_cast<uintptr_t>(hosts[i]) % AtomicLe16::required_alignment != 0)
            return queue_config_error(std::string(areas[i].name) + " is misaligned in host memory");
    }
    for (size_t i = 0; i < 3; ++i) *areas[i].host = hosts[i];

    mem_ = &mem;
    event_idx_ = event_idx;
    next_avail_ = 0;
    next_used_ = 0;
    // Both sides start at used->idx 0, so that is a known baseline for
    // "last interrupt" decisions.
    signalled_used_ = 0;
    signalled_valid_ = true;
    if (event_idx_) {
        // Ask for a kick as soon as the first buffer is posted.
        store_le16(used_ + kUsedRingOffset + kUsedElemSize * n, next_avail_, std::memory_order_relaxed);
    }
    return {};
}

void Queue::reset() {
    config_ = QueueConfig{};
    config_.size = max_size_;
    mem_ = nullptr;
    event_idx_ = false;
    next_avail_ = 0;
    next_used_ = 0;
    signalled_used_ = 0;
    signalled_valid_ = false;
    desc_ = avail_ = used_ = nullptr;
    ++generation_;  // chains popped before the reset are now stale
}

std::variant<std::monostate, DescriptorChain, QueueError> Queue::pop() {
    if (!active()) return QueueError::NotReady;
    const uint16_t size = config_.size;

    // Acquire: pairs with the driver's write barrier before it bumps
    // avail->idx, so the ring entries and descriptors it wrote before the
    // bump are visible to the reads below.
    uint16_t avail_idx = load_le16(avail_ + 2, std::memory_order_acquire);  // guest-controlled
    uint16_t pending = static_cast<uint16_t>(avail_idx - next_avail_);
    if (pending == 0 && event_idx_) {
        // About to report "empty": publish where we are in avail_event so the
        // driver kicks for the next buffer (§2.7.10). While we are busy the
        // field stays stale, which suppresses needless kicks.
        store_le16(used_ + kUsedRingOffset + kUsedElemSize * size, next_avail_, std::memory_order_relaxed);
        // Full fence: the avail_event store must be visible before we re-read
        // avail->idx. The driver does the mirror image (bump idx, full
        // barrier, read avail_event); without the fence each side can miss
        // the other's write and a posted buffer would wait for a kick that
        // never comes.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        avail_idx = load_le16(avail_ + 2, std::memory_order_acquire);  // guest-controlled
        pending = static_cast<uint16_t>(avail_idx - next_avail_);
    }
    if (pending > size) return QueueError::AvailIdxJump;
    if (pending == 0) return std::monostate{};

    uint16_t head;
    std::memcpy(&head, avail_ + kAvailRingOffset + 2u * (next_avail_ & (size - 1u)), sizeof head);
    head = le_to_host(head);  // guest-controlled
    if (head >= size) return QueueError::HeadOutOfRange;

    DescriptorChain chain;
    chain.head_ = head;
    chain.ticket_ = DescriptorChain::Ticket(generation_);
    chain.readable_ = std::move(spare_readable_);
    chain.writable_ = std::move(spare_writable_);
    chain.readable_.clear();
    chain.writable_.clear();
    if (auto err = walk_chain(head, chain)) return *err;
    ++next_avail_;
    return chain;
}

std::optional<QueueError> Queue::walk_chain(uint16_t head, DescriptorChain& chain) const {
    const uint8_t* table = desc_;
    uint32_t table_entries = config_.size;
    // TTL: a chain cannot hold more descriptors than its table (§2.7.5.3.1
    // "no longer than the Queue Size"), so running out means a loop.
    uint32_t ttl = table_entries;
    bool in_indirect = false;
    bool seen_writable = false;
    uint32_t index = head;
    for (;;) {
        if (ttl == 0) return QueueError::ChainTooLong;
        --ttl;
        const RawDesc d = read_desc(table, index);  // guest-controlled

        if (d.flags & kDescIndirect) {
            if (in_indirect) return QueueError::NestedIndirect;
            if (d.flags & kDescNext) return QueueError::IndirectWithNext;
            if (d.len == 0 || d.len % kDescSize != 0 || d.len / kDescSize > max_size_)
                return QueueError::BadIndirectTable;
            const uint8_t* t = mem_->translate(d.addr, d.len);
            if (t == nullptr) return QueueError::BufferOutOfRange;
            // The WRITE flag of the descriptor that points at the table has no
            // meaning and is ignored (§2.7.5.3.2). Walk the table from entry 0
            // with a TTL of its own length.
            table = t;
            table_entries = d.len / kDescSize;
            ttl = table_entries;
            in_indirect = true;
            index = 0;
            continue;
        }

        const bool writable = (d.flags & kDescWrite) != 0;
        if (!writable && seen_writable) return QueueError::ReadableAfterWritable;
        seen_writable = seen_writable || writable;
        if (d.len != 0) {
            uint8_t* p = mem_->translate(d.addr, d.len);  // overflow-safe, whole range in one region
            if (p == nullptr) return QueueError::BufferOutOfRange;
            if (writable) {
                chain.writable_.push_back(Buffer{p, d.len});
                chain.writable_bytes_ += d.len;
            } else {
                chain.readable_.push_back(Buffer{p, d.len});
                chain.readable_bytes_ += d.len;
            }
        }

        if ((d.flags & kDescNext) == 0) return std::nullopt;
        if (d.next >= table_entries) return QueueError::NextOutOfRange;
        index = d.next;
    }
}

void Queue::add_used(DescriptorChain&& chain, uint32_t written) {
    DescriptorChain c = std::move(chain);  // spend the token
    // A chain from before a reset belongs to rings that no longer exist; one
    // already returned must not complete twice.
    if (!active() || !c.ticket_.live || c.ticket_.generation != generation_) return;
    const uint16_t size = config_.size;
    // The driver trusts `len`; never claim more than the chain can hold.
    written = static_cast<uint32_t>(std::min<size_t>(written, c.writable_bytes_));

    uint8_t* elem = used_ + kUsedRingOffset + kUsedElemSize * (next_used_ & (size - 1u));
    const uint32_t id = host_to_le(static_cast<uint32_t>(c.head_));
    const uint32_t len = host_to_le(written);
    std::memcpy(elem, &id, sizeof id);
    std::memcpy(elem + 4, &len, sizeof len);

    // Release: the used element above, and the bytes the device wrote into
    // the chain's buffers before calling us, must be visible before the new
    // used->idx; pairs with the driver's read barrier after it reads the idx.
    std::atomic_thread_fence(std::memory_order_release);
    ++next_used_;
    store_le16(used_ + 2, next_used_, std::memory_order_relaxed);
    spare_readable_ = std::move(c.readable_);
    spare_writable_ = std::move(c.writable_);
}

bool Queue::needs_interrupt() {
    if (!active()) return false;
    // Full fence: our used->idx store must be globally visible before we read
    // the driver's suppression field (avail flags or used_event). The driver
    // writes that field, issues a full barrier and re-reads used->idx; with
    // both fences at least one side sees the other and no completion is
    // left without an interrupt.
    std::atomic_thread_fence(std::memory_order_seq_cst);

    const uint16_t old_idx = signalled_used_;
    const bool old_valid = signalled_valid_;
    signalled_used_ = next_used_;
    signalled_valid_ = true;
    // Nothing completed since the last decision: nothing to tell the driver.
    if (old_valid && old_idx == next_used_) return false;

    if (!event_idx_) {
        const uint16_t flags = load_le16(avail_, std::memory_order_relaxed);  // guest-controlled
        return (flags & kAvailNoInterrupt) == 0;
    }
    // With EVENT_IDX the flags are ignored (§2.7.7.2) and used_event decides.
    const uint16_t used_event =
        load_le16(avail_ + kAvailRingOffset + 2u * config_.size, std::memory_order_relaxed);  // guest-controlled
    if (!old_valid) return true;  // no baseline (cannot happen while active): interrupt to be safe
    return vring_need_event(used_event, next_used_, old_idx);
}

}  // namespace krunlet::virtio
