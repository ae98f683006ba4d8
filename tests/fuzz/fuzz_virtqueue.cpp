// fuzz_virtqueue: the split virtqueue (lib/virtio/queue.h) against a driver
// whose every ring write comes from the fuzzer.
//
// Guest RAM is two regions that touch in guest-physical space but not in
// the host: A = [0x10000, 0x20000) and B = [0x20000, 0x24000), each between
// PROT_NONE guard pages (GuardedRam from tests/unit/virtio/mock_driver.h).
// A buffer or ring that straddles the A/B boundary is contiguous for the
// guest but not for the host, so translate() must refuse it; one byte read
// outside either region hits a guard page.
//
// Input: a queue configuration (sizes, ring placement, EVENT_IDX), then a
// program of driver actions (write descriptors, publish heads, move
// avail->idx, write raw bytes) and device actions (pop, hold, add_used,
// needs_interrupt, reset). Checked after every step:
//   - activate() succeeds exactly when the layout is valid (virtio 1.2 §2.7);
//   - pop() returns nothing / a chain / AvailIdxJump exactly as avail->idx
//     says, and every buffer of a chain lies inside one region (its first
//     and last bytes are touched, so a bad pointer faults);
//   - add_used() publishes {head, min(written, writable bytes)} and bumps
//     used->idx by one, and does nothing for a chain from before a reset;
//   - needs_interrupt() follows the avail flags / used_event rule (§2.7.7.2,
//     §2.7.10).
#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "fuzz_util.h"
#include "mock_driver.h"
#include "virtio/queue.h"

using namespace krunlet;
using namespace krunlet::virtio;
using krunlet::fuzz::Input;
using krunlet::virtio::test::GuardedRam;

namespace {

constexpr uint64_t kGpaA = 0x10000;
constexpr size_t kSizeA = 0x10000;
constexpr uint64_t kGpaB = kGpaA + kSizeA;  // touches A in guest-physical space
constexpr size_t kSizeB = 0x4000;
// Where the program's "indirect table" descriptors go by default.
constexpr uint64_t kIndirectArea = kGpaA + 0xc000;
constexpr size_t kMaxOps = 512;
constexpr size_t kMaxHeld = 8;

struct Rams {
    GuardedRam a{kGpaA, kSizeA};
    GuardedRam b{kGpaB, kSizeB};
    GuestMemory mem = GuestMemory::wrap({MemoryRegion{kGpaA, kSizeA, a.host(kGpaA)},
                                         MemoryRegion{kGpaB, kSizeB, b.host(kGpaB)}});
};

Rams& rams() {
    static Rams* r = new Rams();  // lives for the whole process; never freed on purpose
    return *r;
}

bool in_one_region(const GuestMemory& mem, const uint8_t* p, uint64_t len) {
    for (const MemoryRegion& r : mem.regions()) {
        if (p >= r.host && p <= r.host + r.size && len <= static_cast<uint64_t>(r.host + r.size - p)) return true;
    }
    return false;
}

bool gpa_range_in_one_region(const GuestMemory& mem, uint64_t gpa, uint64_t len) {
    for (const MemoryRegion& r : mem.regions()) {
        if (gpa >= r.gpa && gpa - r.gpa <= r.size && len <= r.size - (gpa - r.gpa)) return true;
    }
    return false;
}

// A guest address: mostly inside A, sometimes inside B, sometimes anything.
uint64_t decode_addr(Input& in) {
    uint8_t m = in.u8();
    if (m < 0xb0) return kGpaA + in.u16() % kSizeA;
    if (m < 0xe0) return kGpaB + in.u16() % kSizeB;
    if (m < 0xf0) return kGpaB - 64 + in.u8();  // around the A/B seam
    return in.u64();
}

uint32_t decode_len(Input& in) {
    uint8_t m = in.u8();
    if (m < 0xc0) return in.u16() % 4096;
    if (m < 0xf0) return in.u16();
    return in.u32();
}

// §2.7.10 vring_need_event.
bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

class Harness {
public:
    explicit Harness(Input& in) : in_(in), mem_(rams().mem) {}

    void run() {
        setup();
        for (size_t i = 0; i < kMaxOps && !in_.empty(); ++i) step();
        // Held chains are dropped here: that leaks ring slots, which is allowed.
    }

private:
    // ---- configuration ------------------------------------------------------
    void setup() {
        uint8_t c = in_.u8();
        uint16_t max = static_cast<uint16_t>(1u << (c % 9));  // 1 .. 256
        if (c & 0x80) max = static_cast<uint16_t>(in_.u16() | 1);  // odd maxima exist too (not 2^n)
        q_ = std::make_unique<Queue>(max);
        configure();
    }

    void configure() {
        uint8_t c = in_.u8();
        QueueConfig& cfg = q_->config();
        uint16_t max = q_->max_size();
        if ((c & 0x0f) != 0x0f) {
            // Mostly a power of two within the maximum.
            unsigned log = (c >> 4) % 9;
            uint16_t s = static_cast<uint16_t>(1u << log);
            while (s > max && s > 1) s >>= 1;
            cfg.size = s;
        } else {
            cfg.size = in_.u16();
        }
        uint8_t layout = in_.u8();
        const uint64_t n = cfg.size;
        if (layout < 0xc0) {
            // The usual contiguous layout at a 16-byte aligned base in A.
            uint64_t base = kGpaA + (uint64_t{in_.u16()} * 16) % kSizeA;
            cfg.desc = base;
            cfg.avail = base + 16 * n;
            cfg.used = (cfg.avail + 6 + 2 * n + 3) & ~uint64_t{3};
        } else {
            cfg.desc = decode_addr(in_);
            cfg.avail = decode_addr(in_);
            cfg.used = decode_addr(in_);
            if (layout & 1) {  // keep the alignment right more often than not
                cfg.desc &= ~uint64_t{15};
                cfg.avail &= ~uint64_t{1};
                cfg.used &= ~uint64_t{3};
            }
        }
        cfg.ready = (layout & 0x3e) != 0x3e;
        event_idx_ = (c & 0x40) != 0 && (layout & 2) != 0;

        std::memset(rams().a.host(kGpaA), 0, kSizeA);
        std::memset(rams().b.host(kGpaB), 0, kSizeB);
        const QueueConfig want = cfg;
        auto r = q_->activate(mem_, event_idx_);
        const bool valid = want.ready && want.size != 0 && (want.size & (want.size - 1)) == 0 && want.size <= max &&
                           want.desc % 16 == 0 && want.avail % 2 == 0 && want.used % 4 == 0 &&
                           gpa_range_in_one_region(mem_, want.desc, 16 * n) &&
                           gpa_range_in_one_region(mem_, want.avail, 6 + 2 * n) &&
                           gpa_range_in_one_region(mem_, want.used, 6 + 8 * n);
        FUZZ_CHECK(r.ok() == valid, "activate() " + std::string(r.ok() ? "accepted" : "refused") +
                                        " a layout the spec says is " + (valid ? "valid" : "invalid") +
                                        (r.ok() ? "" : ": " + r.error().message));
        FUZZ_CHECK(q_->active() == r.ok(), "active() disagrees with activate()");
        active_cfg_ = want;
        popped_ = 0;
        used_ = 0;
        avail_idx_ = 0;
        last_signalled_ = 0;
    }

    // ---- ring access through guest memory (failures are the fuzzer's problem) --
    template <class T>
    void put(uint64_t gpa, T v) {
        (void)mem_.write_obj(gpa, v);
    }
    template <class T>
    T get(uint64_t gpa) {
        return mem_.read_obj<T>(gpa).value_or(T{});
    }
    uint16_t size() const { return active_cfg_.size; }
    uint16_t ram_avail_idx() { return get<uint16_t>(active_cfg_.avail + 2); }
    uint16_t ram_used_idx() { return get<uint16_t>(active_cfg_.used + 2); }

    void write_desc(uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        const uint64_t d = table + 16ull * i;
        put<uint64_t>(d, addr);
        put<uint32_t>(d + 8, len);
        put<uint16_t>(d + 12, flags);
        put<uint16_t>(d + 14, next);
    }
    void publish(uint16_t head) {
        if (size() == 0) return;
        put<uint16_t>(active_cfg_.avail + 4 + 2ull * (avail_idx_ % size()), head);
        set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
    }
    void set_avail_idx(uint16_t idx) {
        avail_idx_ = idx;
        put<uint16_t>(active_cfg_.avail + 2, idx);
    }
    uint16_t small_index(uint16_t modulo) {
        uint16_t v = in_.u16();
        return modulo != 0 && (v & 0x8000) == 0 ? static_cast<uint16_t>(v % modulo) : v;
    }

    // ---- the program -------------------------------------------------------
    void step() {
        switch (in_.u8() % 13) {
            case 0: {  // one descriptor, any table
                uint64_t table = in_.coin() ? active_cfg_.desc : kIndirectArea;
                uint16_t i = small_index(std::max<uint16_t>(size(), 1));
                uint64_t addr = decode_addr(in_);
                uint32_t len = decode_len(in_);
                uint16_t flags = in_.u8() & 0x0f;
                write_desc(table, i, addr, len, flags, small_index(std::max<uint16_t>(size(), 1)));
                break;
            }
            case 1: publish(small_index(std::max<uint16_t>(size(), 1))); break;
            case 2: set_avail_idx(static_cast<uint16_t>(avail_idx_ + in_.u16())); break;
            case 3: pop_all(); break;
            case 4: pop_hold(); break;
            case 5: return_held(); break;
            case 6: check_interrupt(); break;
            case 7:
                put<uint16_t>(active_cfg_.avail, in_.u8() & 1);  // avail flags: NO_INTERRUPT
                put<uint16_t>(active_cfg_.avail + 4 + 2ull * size(), in_.u16());  // used_event
                break;
            case 8:
                q_->reset();
                ++generation_;  // chains popped before the reset are now stale
                FUZZ_CHECK(!q_->active(), "reset() left the queue active");
                configure();
                break;
            case 9: {  // raw bytes anywhere in guest memory
                uint64_t gpa = decode_addr(in_);
                auto b = in_.bytes(in_.u8() % 33);
                (void)mem_.write(gpa, b.data(), b.size());
                break;
            }
            case 10: post_chain(active_cfg_.desc, size()); break;
            case 11: post_indirect(); break;
            case 12: check_copy(); break;
        }
    }

    // A well-formed chain of 1..8 segments (readable ones first) at
    // descriptors first, first+1, ... of `table`; publishes it when it is the
    // queue's own table.
    uint16_t write_chain(uint64_t table, uint16_t entries) {
        if (entries == 0) return 0;
        uint16_t first = static_cast<uint16_t>(in_.u16() % entries);
        uint8_t shape = in_.u8();
        size_t nseg = 1 + shape % 8;
        size_t nread = (shape >> 3) % (nseg + 1);
        for (size_t k = 0; k < nseg; ++k) {
            uint32_t i = static_cast<uint32_t>((first + k) % entries);
            bool last = k + 1 == nseg;
            uint16_t flags = static_cast<uint16_t>((k >= nread ? test::kWrite : 0) | (last ? 0 : test::kNext));
            uint64_t addr = kGpaA + 0x4000 + (uint64_t{in_.u16()} % 0x8000);
            uint32_t len = 1 + in_.u16() % 1024;
            write_desc(table, i, addr, len, flags, static_cast<uint16_t>((i + 1) % entries));
        }
        return first;
    }
    void post_chain(uint64_t table, uint16_t entries) { publish(write_chain(table, entries)); }
    void post_indirect() {
        if (size() == 0) return;
        uint16_t entries = static_cast<uint16_t>(1 + in_.u8() % 16);
        write_chain(kIndirectArea, entries);
        uint16_t head = static_cast<uint16_t>(in_.u16() % size());
        uint16_t flags = test::kIndirect | (in_.u8() & (test::kWrite | test::kNext));
        write_desc(active_cfg_.desc, head, kIndirectArea, 16u * entries, flags, 0);
        publish(head);
    }

    // ---- device side --------------------------------------------------------
    std::optional<DescriptorChain> pop_checked() {
        const uint16_t avail = ram_avail_idx();
        const uint16_t pending = static_cast<uint16_t>(avail - popped_);
        auto r = q_->pop();
        if (!q_->active()) {
            FUZZ_CHECK(std::holds_alternative<QueueError>(r) && std::get<QueueError>(r) == QueueError::NotReady,
                       "pop() on an inactive queue must fail with NotReady");
            return std::nullopt;
        }
        if (auto* e = std::get_if<QueueError>(&r)) {
            FUZZ_CHECK(pending != 0, std::string("error with nothing pending: ") + to_string(*e));
            FUZZ_CHECK((*e == QueueError::AvailIdxJump) == (pending > size()),
                       std::string("AvailIdxJump mismatch: ") + to_string(*e) + ", pending " + std::to_string(pending));
            FUZZ_CHECK(*e != QueueError::NotReady && *e != QueueError::RingOutOfRange,
                       std::string("unexpected error on a live queue: ") + to_string(*e));
            return std::nullopt;
        }
        if (std::holds_alternative<std::monostate>(r)) {
            FUZZ_CHECK(pending == 0, "pop() said empty with " + std::to_string(pending) + " pending");
            return std::nullopt;
        }
        FUZZ_CHECK(pending != 0 && pending <= size(), "pop() returned a chain with " + std::to_string(pending) +
                                                          " pending (size " + std::to_string(size()) + ")");
        DescriptorChain chain = std::get<DescriptorChain>(std::move(r));
        ++popped_;
        check_chain(chain);
        return chain;
    }

    void check_chain(const DescriptorChain& c) {
        FUZZ_CHECK(c.head() < size(), "head " + std::to_string(c.head()) + " >= size");
        auto check = [&](std::span<const Buffer> bufs, size_t total, bool writable) {
            size_t sum = 0;
            for (const Buffer& b : bufs) {
                FUZZ_CHECK(b.len != 0, "zero-length buffer in a chain");
                FUZZ_CHECK(in_one_region(mem_, b.data, b.len), "buffer outside guest RAM");
                // Touch both ends: a pointer outside RAM faults on a guard page.
                volatile uint8_t* p = b.data;
                uint8_t first = p[0], last = p[b.len - 1];
                if (writable) {
                    p[0] = first;
                    p[b.len - 1] = last;
                }
                sum += b.len;
            }
            FUZZ_CHECK(sum == total, "byte count does not match the buffers");
        };
        check(c.readable(), c.readable_bytes(), false);
        check(c.writable(), c.writable_bytes(), true);
        auto iov = c.writable_iovecs();
        FUZZ_CHECK(iov.size() == c.writable().size(), "writable_iovecs() size");
    }

    void add_used_checked(DescriptorChain&& c, uint32_t written, bool stale) {
        const uint16_t head = c.head();
        const size_t wb = c.writable_bytes();
        const uint16_t before = q_->active() ? ram_used_idx() : 0;
        q_->add_used(std::move(c), written);
        if (!q_->active()) return;
        const uint16_t after = ram_used_idx();
        if (stale) {
            FUZZ_CHECK(after == before, "add_used() of a chain from before a reset changed used->idx");
            return;
        }
        // The device publishes its own count, whatever the guest scribbled over used->idx.
        FUZZ_CHECK(after == static_cast<uint16_t>(used_ + 1), "add_used() did not publish used->idx = completions");
        const uint64_t e = active_cfg_.used + 4 + 8ull * (used_ % size());
        FUZZ_CHECK(get<uint32_t>(e) == head, "used element id is not the chain's head");
        FUZZ_CHECK(get<uint32_t>(e + 4) == std::min<size_t>(written, wb),
                   "used element len is not min(written, writable bytes)");
        ++used_;
    }

    void pop_all() {
        // pending <= size after the first pop, so this ends; the cap is a backstop.
        for (size_t guard = 0; guard < 65536; ++guard) {
            auto c = pop_checked();
            if (!c) return;
            add_used_checked(std::move(*c), in_.u32(), false);
        }
        FUZZ_CHECK(false, "pop() never ran dry");
    }

    void pop_hold() {
        if (held_.size() >= kMaxHeld) return;
        auto c = pop_checked();
        if (c) held_.push_back(Held{std::move(*c), generation_});
    }

    void return_held() {
        if (held_.empty()) return;
        size_t k = in_.u8() % held_.size();
        Held h = std::move(held_[k]);
        held_.erase(held_.begin() + static_cast<long>(k));
        uint8_t mode = in_.u8();
        if (mode & 1) {
            // Return the moved-from husk too: the token is spent, nothing may change.
            DescriptorChain taken = std::move(h.chain);
            const uint16_t before = q_->active() ? ram_used_idx() : 0;
            q_->add_used(std::move(h.chain), 1);
            FUZZ_CHECK(!q_->active() || ram_used_idx() == before, "add_used() of a moved-from chain changed used->idx");
            add_used_checked(std::move(taken), in_.u32(), h.generation != generation_);
        } else {
            add_used_checked(std::move(h.chain), in_.u32(), h.generation != generation_);
        }
    }

    void check_interrupt() {
        if (!q_->active()) {
            FUZZ_CHECK(!q_->needs_interrupt(), "needs_interrupt() on an inactive queue");
            return;
        }
        const uint16_t old = last_signalled_;
        const bool got = q_->needs_interrupt();
        last_signalled_ = used_;
        bool want;
        if (old == used_) {
            want = false;
        } else if (!event_idx_) {
            want = (get<uint16_t>(active_cfg_.avail) & 1) == 0;
        } else {
            want = need_event(get<uint16_t>(active_cfg_.avail + 4 + 2ull * size()), used_, old);
        }
        FUZZ_CHECK(got == want, std::string("needs_interrupt() said ") + (got ? "yes" : "no"));
    }

    void check_copy() {
        if (held_.empty()) return;
        const DescriptorChain& c = held_[in_.u8() % held_.size()].chain;
        size_t off = in_.u16();
        std::vector<uint8_t> out(in_.u16() % 8192);
        size_t got = c.copy_from_readable(off, out);
        size_t want = off >= c.readable_bytes() ? 0 : std::min(out.size(), c.readable_bytes() - off);
        FUZZ_CHECK(got == want, "copy_from_readable() returned a wrong count");
        got = c.copy_to_writable(off, out);
        want = off >= c.writable_bytes() ? 0 : std::min(out.size(), c.writable_bytes() - off);
        FUZZ_CHECK(got == want, "copy_to_writable() returned a wrong count");
    }

    struct Held {
        DescriptorChain chain;
        uint32_t generation;
    };

    Input& in_;
    const GuestMemory& mem_;
    std::unique_ptr<Queue> q_;
    QueueConfig active_cfg_;
    bool event_idx_ = false;
    uint16_t popped_ = 0;          // chains pop() has handed out since activation
    uint16_t used_ = 0;            // add_used() calls that took effect
    uint16_t avail_idx_ = 0;       // what the driver last stored in avail->idx
    uint16_t last_signalled_ = 0;  // used idx at the last needs_interrupt()
    uint32_t generation_ = 0;
    std::vector<Held> held_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    Harness h(in);
    h.run();
    return 0;
}
