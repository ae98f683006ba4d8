// krunlet-mmioabuse: the guest half of the MMIO-abuse case in tests/integration/faults_test.cpp.
// It plays a malicious guest kernel from user space: through /dev/mem it maps the register
// window of every virtio-mmio device the kernel command line announces, and
//
//   1. "live":    rewrites one field of a queue the device is using (after DRIVER_OK), the
//                 queue-reconfigured-after-activation pattern; virtio 1.2 §4.2.2.2 forbids it,
//                 and the device must answer with DEVICE_NEEDS_RESET (0x40) in Status;
//   2. "garbage": makes thousands of seeded pseudo-random accesses to every register and the
//                 config space: any value, any width, kicks of any queue, and repeated bring-ups
//                 whose rings live in a page of ours filled with random descriptors (buffer
//                 addresses in our pages or far beyond RAM, random lengths, flags and chains);
//   3. "recover": checks the window still answers (magic, version), resets the device by
//                 writing 0 to Status, and negotiates up to FEATURES_OK again.
//
// Devices are handled in an order that keeps the report readable: every device but the
// console and the root file system first, then virtio-fs (while two threads keep file I/O in
// flight on it), then the console, after the last line is out. Then it resets the machine
// itself (init could not sync a root whose device is quiesced). The host side checks the
// VMM survived, ended with the guest-reset status, and counted a NEEDS_RESET on every device.
//
// Output, one line per fact, unbuffered:
//   device T base=0x.. queues=N status=0x..        (T is the virtio device id, §5)
//   live T queue=Q field=NAME status=0x.. needs_reset=yes|no
//   garbage T accesses=N bringups=N live=N faulted=N   (bring-ups that reached DRIVER_OK, and
//                                                      those the device then marked NEEDS_RESET)
//   recover T magic=ok|bad status_after_reset=0x.. features_ok=yes|no
//   fs-io writes=N errors=N                       (I/O done before the fs device was hit)
//   done
//
// Usage: krunlet-mmioabuse [SEED]  (runs as root: /dev/mem, /proc/self/pagemap, reboot)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/io.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

// virtio-mmio register offsets (virtio 1.2 §4.2.2).
constexpr uint32_t kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kDeviceFeatures = 0x010,
                   kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020,
                   kDriverFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038,
                   kQueueReady = 0x044, kQueueNotify = 0x050, kStatus = 0x070, kQueueDescLow = 0x080,
                   kQueueDescHigh = 0x084, kQueueDriverLow = 0x090, kQueueDriverHigh = 0x094,
                   kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4;
constexpr uint32_t kWindow = 0x200;  // registers plus the first 256 bytes of config space
constexpr uint32_t kStatusFeaturesOk = 8, kStatusDriverOk = 4, kStatusNeedsReset = 0x40;
constexpr uint32_t kTypeConsole = 3, kTypeFs = 26;
constexpr uint32_t kMaxQueues = 8;
constexpr size_t kPage = 4096;

struct Rng {
    uint64_t s;
    uint64_t next() {  // xorshift64*: deterministic per seed, so a failure replays
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545f4914f6cdd1dull;
    }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

[[noreturn]] void die(const std::string& what) {
    std::printf("error %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(3);
}

class Device {
public:
    Device(int mem_fd, uint64_t base) : base_(base) {
        void* p = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, static_cast<off_t>(base));
        if (p == MAP_FAILED) die("mmap /dev/mem at " + std::to_string(base));
        regs_ = static_cast<volatile uint8_t*>(p);
        type_ = read(kDeviceId);
    }
    uint32_t read(uint32_t off) const { return *reinterpret_cast<volatile uint32_t*>(regs_ + off); }
    void write(uint32_t off, uint32_t v) const { *reinterpret_cast<volatile uint32_t*>(regs_ + off) = v; }
    // Accesses the device must refuse (not 32-bit, or misaligned).
    void write_odd(uint32_t off, uint64_t v, unsigned width) const {
        if (width == 1) *(regs_ + off) = static_cast<uint8_t>(v);
        if (width == 2) *reinterpret_cast<volatile uint16_t*>(regs_ + (off & ~1u)) = static_cast<uint16_t>(v);
        if (width == 8) *reinterpret_cast<volatile uint64_t*>(regs_ + (off & ~7u)) = v;
    }
    void read_odd(uint32_t off, unsigned width) const {
        if (width == 1) (void)*(regs_ + off);
        if (width == 2) (void)*reinterpret_cast<volatile uint16_t*>(regs_ + (off & ~1u));
        if (width == 8) (void)*reinterpret_cast<volatile uint64_t*>(regs_ + (off & ~7u));
    }
    uint32_t type() const { return type_; }
    uint64_t base() const { return base_; }
    uint32_t queue_count() const {
        uint32_t n = 0;
        while (n < kMaxQueues) {
            write(kQueueSel, n);
            if (read(kQueueNumMax) == 0) break;
            ++n;
        }
        return n;
    }

private:
    volatile uint8_t* regs_ = nullptr;
    uint64_t base_;
    uint32_t type_ = 0;
};

// "virtio_mmio.device=4K@0xd0000000:5" words of /proc/cmdline (how the VMM announces them).
std::vector<uint64_t> announced_bases() {
    std::ifstream f("/proc/cmdline");
    std::string word;
    std::vector<uint64_t> bases;
    while (f >> word) {
        const std::string key = "virtio_mmio.device=";
        if (word.rfind(key, 0) != 0) continue;
        auto at = word.find('@');
        if (at == std::string::npos) continue;
        bases.push_back(std::strtoull(word.c_str() + at + 1, nullptr, 0));
    }
    return bases;
}

// A locked page of ours and its guest-physical address (from /proc/self/pagemap, bits 0-54
// hold the PFN; root only). The device may write anywhere in it without harming the kernel.
struct PinnedPage {
    uint8_t* p = nullptr;
    uint64_t phys = 0;
};
PinnedPage pin_page() {
    void* v = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    if (v == MAP_FAILED) die("mmap");
    std::memset(v, 0x5a, kPage);
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open /proc/self/pagemap");
    uint64_t entry = 0;
    const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(v) / kPage * sizeof entry);
    if (::pread(fd, &entry, sizeof entry, at) != sizeof entry) die("read /proc/self/pagemap");
    ::close(fd);
    const uint64_t pfn = entry & ((1ull << 55) - 1);
    if (!(entry >> 63) || pfn == 0) {
        errno = EPERM;
        die("pagemap shows no PFN (not root?)");
    }
    return {static_cast<uint8_t*>(v), pfn * kPage};
}

class Abuser {
public:
    explicit Abuser(uint64_t seed) : rng_{seed | 1}, ring_(pin_page()), buf_(pin_page()) {}
    // Quiet once the console itself is the target (see main).
    void set_quiet(bool quiet) { quiet_ = quiet; }

    // 1. Change a field of a queue the device is using.
    void live(const Device& d, unsigned variant) {
        static constexpr struct {
            uint32_t off;
            const char* name;
        } kFields[] = {{kQueueDescLow, "desc"}, {kQueueDriverLow, "driver"}, {kQueueDeviceLow, "device"},
                       {kQueueNum, "num"}, {kQueueReady, "ready"}};
        const auto& f = kFields[variant % std::size(kFields)];
        // The last ready queue: for virtio-fs a request queue rather than hiprio.
        const uint32_t n = d.queue_count();
        uint32_t q = n;
        for (uint32_t i = 0; i < n; ++i) {
            d.write(kQueueSel, i);
            if (d.read(kQueueReady) == 1) q = i;
        }
        const uint32_t before = d.read(kStatus);
        if (q == n || !(before & kStatusDriverOk)) {
            say("live %u queue=none field=%s status=0x%x needs_reset=no\n", d.type(), f.name, before);
            return;
        }
        d.write(kQueueSel, q);
        // A value the queue cannot already hold: another page for addresses, a halved size,
        // or "not ready".
        uint32_t v = f.off == kQueueNum ? d.read(kQueueNumMax) / 2 + 1 : f.off == kQueueReady ? 0 : 0x1000;
        d.write(f.off, v);
        const uint32_t after = d.read(kStatus);
        say("live %u queue=%u field=%s status=0x%x needs_reset=%s\n", d.type(), q, f.name, after,
                    (after & kStatusNeedsReset) ? "yes" : "no");
    }

    // 2. Garbage, with bring-ups that make the device parse random rings.
    void garbage(const Device& d, unsigned accesses) {
        const uint32_t nq = d.queue_count();
        unsigned bringups = 0;
        live_ = faulted_ = 0;
        for (unsigned i = 0; i < accesses; ++i) {
            const uint32_t off = rng_.below(kWindow / 4) * 4;
            switch (rng_.below(10)) {
                case 0:
                case 1:
                case 2:
                case 3: d.write(off, value()); break;
                case 4: (void)d.read(off); break;
                case 5: d.write_odd(rng_.below(kWindow), rng_.next(), 1u << rng_.below(4)); break;
                case 6: d.read_odd(rng_.below(kWindow), 1u << rng_.below(4)); break;
                case 7: d.write(kQueueNotify, rng_.below(kMaxQueues + 2)); break;
                case 8: d.write(kStatus, value()); break;
                default:
                    if (nq > 0) {
                        bring_up(d, nq);
                        ++bringups;
                    }
                    break;
            }
        }
        say("garbage %u accesses=%u bringups=%u live=%u faulted=%u\n", d.type(), accesses, bringups, live_, faulted_);
    }

    // 3. The window still answers, a reset takes, and the device negotiates again.
    void recover(const Device& d) {
        const bool magic = d.read(kMagic) == 0x74726976 && d.read(kVersion) == 2 && d.read(kDeviceId) == d.type();
        d.write(kStatus, 0);
        const uint32_t after_reset = d.read(kStatus);
        d.write(kStatus, 1);
        d.write(kStatus, 3);
        d.write(kDriverFeaturesSel, 1);
        d.write(kDriverFeatures, 1);  // VIRTIO_F_VERSION_1 (bit 32) and nothing else
        d.write(kDriverFeaturesSel, 0);
        d.write(kDriverFeatures, 0);
        d.write(kStatus, 3 | kStatusFeaturesOk);
        const bool features_ok = (d.read(kStatus) & kStatusFeaturesOk) != 0;
        d.write(kStatus, 0);  // leave it idle: its kernel driver believes in rings that are gone
        say("recover %u magic=%s status_after_reset=0x%x features_ok=%s\n", d.type(), magic ? "ok" : "bad",
                    after_reset, features_ok ? "yes" : "no");
    }

private:
    __attribute__((format(printf, 2, 3))) void say(const char* fmt, ...) const {
        if (quiet_) return;
        va_list ap;
        va_start(ap, fmt);
        std::vprintf(fmt, ap);
        va_end(ap);
    }

    // Small values half the time: they are the ones state machines and indices care about.
    uint32_t value() { return rng_.below(2) ? rng_.below(17) : static_cast<uint32_t>(rng_.next()); }

    // A guest-physical address for a descriptor: in one of our pages (the device may write
    // there), or far beyond any RAM (the device must refuse it). Never the kernel's memory.
    uint64_t buffer_address() {
        switch (rng_.below(4)) {
            case 0:
            case 1: return buf_.phys + rng_.below(kPage);
            case 2: return ring_.phys + rng_.below(kPage);
            default: return (1ull << 40) | rng_.next() >> 24;
        }
    }

    void bring_up(const Device& d, uint32_t nq) {
        // Random rings: descriptors with our addresses, random lengths, flags and next links;
        // random avail/used indices and entries. The layout below keeps the three areas of
        // each queue inside the ring page (size at most 16: 256 + 38 + 134 bytes).
        for (size_t i = 0; i < kPage; ++i) ring_.p[i] = static_cast<uint8_t>(rng_.next());
        for (uint32_t q = 0; q < nq; ++q) {
            uint8_t* desc = ring_.p + q * 512;
            for (unsigned k = 0; k < 16; ++k) {
                const uint64_t addr = buffer_address();
                std::memcpy(desc + 16 * k, &addr, 8);
            }
        }
        d.write(kStatus, 0);
        d.write(kStatus, 1);
        d.write(kStatus, 3);
        // Mostly a random subset of what the device offers, so that most bring-ups get past
        // FEATURES_OK and the device really parses the rings; sometimes anything at all.
        for (uint32_t sel = 0; sel < 2; ++sel) {
            d.write(kDeviceFeaturesSel, sel);
            d.write(kDriverFeaturesSel, sel);
            const uint32_t offered = d.read(kDeviceFeatures);
            const uint32_t pick = rng_.below(8) == 0 ? value() : offered & static_cast<uint32_t>(rng_.next());
            d.write(kDriverFeatures, sel == 1 ? pick | 1 : pick);  // bit 32: VIRTIO_F_VERSION_1
        }
        d.write(kStatus, 11);
        for (uint32_t q = 0; q < nq; ++q) {
            const uint64_t base = ring_.phys + q * 512;
            d.write(kQueueSel, q);
            d.write(kQueueNum, rng_.below(8) == 0 ? value() : 1u << rng_.below(5));
            d.write(kQueueDescLow, static_cast<uint32_t>(base));
            d.write(kQueueDescHigh, static_cast<uint32_t>(base >> 32));
            d.write(kQueueDriverLow, static_cast<uint32_t>(base + 256));
            d.write(kQueueDriverHigh, static_cast<uint32_t>(base >> 32));
            d.write(kQueueDeviceLow, static_cast<uint32_t>(base + 300));
            d.write(kQueueDeviceHigh, static_cast<uint32_t>(base >> 32));
            d.write(kQueueReady, 1);
        }
        d.write(kStatus, 15);
        // DRIVER_OK took: the device has read the rings. A device that found garbage in them
        // at once (tx buffers queued before DRIVER_OK, say) shows NEEDS_RESET as well.
        if (const uint32_t st = d.read(kStatus); st & kStatusDriverOk) ++(st & kStatusNeedsReset ? faulted_ : live_);
        for (unsigned k = 0; k < 4; ++k) d.write(kQueueNotify, rng_.below(nq));
        // Devices with threads of their own (virtio-fs) get a moment to chew on it.
        ::usleep(1000);
    }

    Rng rng_;
    PinnedPage ring_;
    PinnedPage buf_;
    bool quiet_ = false;
    // Bring-ups that reached DRIVER_OK, and of those the ones the device then marked NEEDS_RESET.
    unsigned live_ = 0, faulted_ = 0;
};

// Keeps FUSE requests in flight on the root while its device is being hit.
class FsTraffic {
public:
    FsTraffic() {
        for (int t = 0; t < 2; ++t) threads_.emplace_back([this, t] { run(t); });
    }
    // The threads are left blocked in the kernel on purpose: their requests will never
    // complete once the device is quiesced, and the machine is reset soon after.
    void stop_counting() {
        std::printf("fs-io writes=%lu errors=%lu\n", writes_.load(), errors_.load());
        for (auto& t : threads_) t.detach();
    }

private:
    void run(int t) {
        const std::string path = "/mmio-abuse-io." + std::to_string(t);
        char block[4096];
        std::memset(block, 'a' + t, sizeof block);
        for (unsigned i = 0;; ++i) {
            int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            bool ok = fd >= 0 && ::pwrite(fd, block, sizeof block, (i % 64) * sizeof block) == sizeof block &&
                      ::fsync(fd) == 0;
            if (fd >= 0) ::close(fd);
            (ok ? writes_ : errors_).fetch_add(1);
        }
    }
    std::atomic<unsigned long> writes_{0}, errors_{0};
    std::vector<std::thread> threads_;
};

int open_dev_mem() {
    int fd = ::open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        // No devtmpfs node: make one (char 1:1 is /dev/mem, Documentation/admin-guide/devices.txt).
        if (::mknod("/dev/mem", S_IFCHR | 0600, makedev(1, 1)) != 0) die("mknod /dev/mem");
        fd = ::open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    }
    if (fd < 0) die("open /dev/mem (needs CONFIG_DEVMEM without IO_STRICT_DEVMEM, and root)");
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 0x6b72756eull;
    // Everything this program will run must be in memory before the root's device goes.
    if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) die("mlockall");
    const int mem = open_dev_mem();
    std::vector<Device> devices;
    for (uint64_t base : announced_bases()) devices.emplace_back(mem, base);
    if (devices.empty()) {
        std::printf("error no virtio_mmio.device= on /proc/cmdline\n");
        return 3;
    }
    for (const auto& d : devices)
        std::printf("device %u base=0x%" PRIx64 " queues=%u status=0x%x\n", d.type(), d.base(), d.queue_count(),
                    d.read(kStatus));

    Abuser abuser(seed);
    unsigned variant = 0;
    auto hit = [&](const Device& d, bool report = true) {
        abuser.set_quiet(!report);
        abuser.live(d, variant++);
        abuser.garbage(d, 3000);
        abuser.recover(d);
    };
    for (const auto& d : devices)
        if (d.type() != kTypeConsole && d.type() != kTypeFs) hit(d);

    FsTraffic* traffic = new FsTraffic;  // never freed: its threads end with the machine
    ::usleep(300 * 1000);
    for (const auto& d : devices)
        if (d.type() == kTypeFs) {
            traffic->stop_counting();
            hit(d);
        }
    std::printf("done\n");
    std::fflush(stdout);
    // The console last. Nothing may print after it: the kernel's hvc console waits, spinning
    // with interrupts off, for the device to return each buffer, and this one never will. So
    // not reboot(2), whose "Restarting system" is printed at KERN_EMERG, but the i8042 reset
    // line, poked directly (the VMM treats it as the guest resetting the machine).
    if (::ioperm(0x64, 1, 1) != 0) die("ioperm 0x64");
    ::usleep(200 * 1000);  // let "done" leave the console first
    for (const auto& d : devices)
        if (d.type() == kTypeConsole) hit(d, false);
    ::outb(0xfe, 0x64);  // i8042 command 0xfe: pulse the CPU reset line
    for (;;) ::pause();
}
