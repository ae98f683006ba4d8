// Split virtqueue (virtio 1.2 §2.7), device side.
//
// The queue depends only on GuestMemory. Every field read from the rings and
// descriptor table is guest-controlled; pop() validates each chain completely
// (index bounds, a TTL of `size` descriptors so loops end, no nested indirect
// tables, every buffer inside guest RAM, no device-readable buffer after a
// device-writable one) and returns a named QueueError for each fault, after
// which the device must be marked NEEDS_RESET.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <sys/uio.h>
#include <utility>
#include <variant>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace krunlet::virtio {

enum class QueueError {
    NotReady,          // pop() on a queue that is not activated
    AvailIdxJump,      // avail->idx moved more than `size` past our position
    HeadOutOfRange,    // an avail ring entry >= size
    NextOutOfRange,    // desc.next >= table size
    ChainTooLong,      // more descriptors than the TTL allows (a loop)
    NestedIndirect,    // VIRTQ_DESC_F_INDIRECT inside an indirect table
    BadIndirectTable,  // indirect len 0, not a multiple of 16, or too long
    IndirectWithNext,  // INDIRECT together with NEXT (forbidden by §2.7.5.3.1)
    BufferOutOfRange,  // addr/len not inside guest RAM, or overflows
    ReadableAfterWritable,
    RingOutOfRange,    // the rings themselves are not in guest RAM
};
const char* to_string(QueueError e);
// The error a device returns from queue_notify() for a broken queue.
Error to_error(QueueError e);

// One descriptor's buffer as seen by the host. The bytes are guest-controlled.
struct Buffer {
    uint8_t* data = nullptr;
    uint32_t len = 0;
};

// A popped chain: a move-only token that must be handed back with
// Queue::add_used() (a dropped chain leaks a ring slot, as in Fuchsia machina).
class DescriptorChain {
public:
    DescriptorChain(DescriptorChain&&) noexcept = default;
    DescriptorChain& operator=(DescriptorChain&&) noexcept = default;
    DescriptorChain(const DescriptorChain&) = delete;
    DescriptorChain& operator=(const DescriptorChain&) = delete;

    uint16_t head() const { return head_; }
    std::span<const Buffer> readable() const { return readable_; }
    std::span<const Buffer> writable() const { return writable_; }
    size_t readable_bytes() const { return readable_bytes_; }
    size_t writable_bytes() const { return writable_bytes_; }

    // Copy up to out.size() readable bytes starting at byte `offset`; returns
    // how many were copied.
    size_t copy_from_readable(size_t offset, std::span<uint8_t> out) const;
    // Copy bytes into the writable buffers starting at byte `offset`; returns
    // how many fit.
    size_t copy_to_writable(size_t offset, std::span<const uint8_t> in) const;
    // The writable buffers as iovecs (for preadv, FUSE replies, ...).
    std::vector<struct iovec> writable_iovecs() const;
    // The same into `out` (cleared first), for a caller that reuses one vector per request.
    void writable_iovecs(std::vector<struct iovec>& out) const;

private:
    friend class Queue;
    DescriptorChain() = default;
    // Which queue generation (reset epoch) the chain came from. Moving a
    // chain leaves the source spent, so add_used() ignores a chain handed
    // back twice or one popped before a device reset.
    struct Ticket {
        uint32_t generation = 0;
        bool live = false;
        Ticket() = default;
        explicit Ticket(uint32_t g) : generation(g), live(true) {}
        Ticket(Ticket&& o) noexcept : generation(o.generation), live(std::exchange(o.live, false)) {}
        Ticket& operator=(Ticket&& o) noexcept {
            generation = o.generation;
            live = std::exchange(o.live, false);
            return *this;
        }
    };
    Ticket ticket_;
    uint16_t head_ = 0;
    std::vector<Buffer> readable_;
    std::vector<Buffer> writable_;
    size_t readable_bytes_ = 0;
    size_t writable_bytes_ = 0;
};

// What the driver programs through the transport before DRIVER_OK.
struct QueueConfig {
    uint16_t size = 0;
    uint64_t desc = 0;
    uint64_t avail = 0;
    uint64_t used = 0;
    bool ready = false;
};

class Queue {
public:
    explicit Queue(uint16_t max_size);

    uint16_t max_size() const { return max_size_; }
    // Written by the transport; frozen (ignored by the transport) once live.
    QueueConfig& config() { return config_; }
    const QueueConfig& config() const { return config_; }
    bool active() const { return mem_ != nullptr; }

    // At DRIVER_OK: check size (power of two, <= max), ring alignment and
    // that the three rings lie in guest RAM, then go live. `event_idx` is
    // whether VIRTIO_F_EVENT_IDX was negotiated.
    Result<void> activate(const GuestMemory& mem, bool event_idx);
    // Forget everything (device reset).
    void reset();

    // The next available chain; nullopt when the driver has posted none.
    // An error means the driver broke the protocol: mark the device
    // NEEDS_RESET and stop using the queue.
    std::variant<std::monostate, DescriptorChain, QueueError> pop();

    // Return a chain with `written` bytes written into its writable buffers.
    void add_used(DescriptorChain&& chain, uint32_t written);

    // After one or more add_used(): does the driver want an interrupt now?
    // Honours VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX
    // (virtio 1.2 §2.7.7.2).
    bool needs_interrupt();

private:
    std::optional<QueueError> walk_chain(uint16_t head, DescriptorChain& chain) const;

    uint16_t max_size_;
    QueueConfig config_;
    const GuestMemory* mem_ = nullptr;
    bool event_idx_ = false;
    uint16_t next_avail_ = 0;     // our position in the avail ring
    uint16_t next_used_ = 0;      // our used->idx shadow
    uint16_t signalled_used_ = 0; // used idx at the last interrupt (EVENT_IDX)
    bool signalled_valid_ = false;
    uint32_t generation_ = 0;     // bumped by reset(); see DescriptorChain::Ticket
    // Host views of the rings, valid while active.
    uint8_t* desc_ = nullptr;
    uint8_t* avail_ = nullptr;
    uint8_t* used_ = nullptr;
    // The buffer lists of the last chain add_used() took back, handed to the next pop() with
    // their capacity: a device serving one request at a time then allocates nothing per chain.
    std::vector<Buffer> spare_readable_;
    std::vector<Buffer> spare_writable_;
};

}  // namespace krunlet::virtio
