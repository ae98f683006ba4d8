// kvm-smoke: prove that /dev/kvm really runs guest code.
//
// It creates a VM with 64 KiB of RAM and a vCPU in real mode, runs a tiny
// program that computes a value, sends it to an I/O port, loops over more
// port writes, stores a word to guest memory and halts. Every exit is checked
// against what the program must produce, so a KVM that returns without running
// the guest (or runs it wrongly) fails. Timings are printed for the README.
//
// With -c N, N vCPUs run the program at the same time, each on its own
// thread with its own port, value and store address, so SMP guests (the
// integration tests boot 2-vCPU microVMs) are proven too.
//
// Usage: kvm-smoke [-n LOOPS] [-c VCPUS] [-q]
//        exit 0 = OK, 1 = FAIL, 2 = usage.
//
// Built statically by prepare.sh so the test host's initramfs can run it
// before /usr is mounted.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum {
    kMemSize = 0x10000,
    kCodeAddr = 0x1000,
    kDataAddr = 0x0500,
    kPort = 0x3f0,
    kCodeStride = 0x100,
    kMaxVcpus = 8,
    kTimeoutSeconds = 30,
};

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("kvm-smoke: FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    exit(1);
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static const char *exit_name(uint32_t reason) {
    switch (reason) {
    case KVM_EXIT_IO: return "IO";
    case KVM_EXIT_HLT: return "HLT";
    case KVM_EXIT_MMIO: return "MMIO";
    case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
    default: return "other";
    }
}

// One vCPU's job; filled by the main thread, results by the vCPU thread.
struct vcpu_job {
    int index;
    int fd;
    struct kvm_run *run;
    size_t run_size;
    long loops;
    pthread_t thread;
    int done;           // set (under g_lock) when the thread finishes
    char error[256];    // empty = passed
    double first_exit_us, per_exit_us;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

#define JOB_FAIL(job, ...)                                                   \
    do {                                                                     \
        snprintf((job)->error, sizeof (job)->error, __VA_ARGS__);            \
        goto out;                                                            \
    } while (0)

// Checks that the exit is an OUT of `size` bytes with `value` to `port`;
// returns an error text or NULL.
static const char *check_out(const struct vcpu_job *job, uint16_t port,
                             uint8_t size, uint32_t value, char *buf,
                             size_t len) {
    const struct kvm_run *run = job->run;
    if (run->exit_reason != KVM_EXIT_IO) {
        snprintf(buf, len, "expected an IO exit, got %s (%u)",
                 exit_name(run->exit_reason), run->exit_reason);
        return buf;
    }
    if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != port ||
        run->io.size != size || run->io.count != 1) {
        snprintf(buf, len, "unexpected IO exit dir=%u port=%#x size=%u count=%u",
                 run->io.direction, run->io.port, run->io.size, run->io.count);
        return buf;
    }
    // The data offset is chosen by KVM; keep the read inside the mapping.
    if (run->io.data_offset > job->run_size ||
        job->run_size - run->io.data_offset < size) {
        snprintf(buf, len, "IO data offset %#llx out of range",
                 (unsigned long long)run->io.data_offset);
        return buf;
    }
    uint32_t got = 0;
    memcpy(&got, (const uint8_t *)run + run->io.data_offset, size);
    if (got != value) {
        snprintf(buf, len, "port value %#x, expected %#x", got, value);
        return buf;
    }
    return NULL;
}

static void *vcpu_thread(void *arg) {
    struct vcpu_job *job = arg;
    const uint16_t port = (uint16_t)(kPort + job->index);
    const uint16_t word = (uint16_t)(0x2345 + job->index);
    char why[160];
    const char *err;

    double t0 = now_us();
    if (ioctl(job->fd, KVM_RUN, 0) < 0)
        JOB_FAIL(job, "KVM_RUN: %s", strerror(errno));
    double t1 = now_us();
    if ((err = check_out(job, port, 2, word, why, sizeof why)))
        JOB_FAIL(job, "first exit: %s", err);
    for (long i = 0; i < job->loops; i++) {
        if (ioctl(job->fd, KVM_RUN, 0) < 0)
            JOB_FAIL(job, "KVM_RUN: %s", strerror(errno));
        if ((err = check_out(job, port, 1, word & 0xff, why, sizeof why)))
            JOB_FAIL(job, "loop exit %ld: %s", i, err);
    }
    double t2 = now_us();
    if (ioctl(job->fd, KVM_RUN, 0) < 0)
        JOB_FAIL(job, "KVM_RUN: %s", strerror(errno));
    if (job->run->exit_reason != KVM_EXIT_HLT)
        JOB_FAIL(job, "expected HLT after the loop, got %s (%u)",
                 exit_name(job->run->exit_reason), job->run->exit_reason);
    struct kvm_regs regs;
    if (ioctl(job->fd, KVM_GET_REGS, &regs) < 0)
        JOB_FAIL(job, "KVM_GET_REGS: %s", strerror(errno));
    if ((regs.rcx & 0xffff) != 0)
        JOB_FAIL(job, "loop counter cx=%#llx after the loop, expected 0",
                 (unsigned long long)regs.rcx);
    job->first_exit_us = t1 - t0;
    job->per_exit_us = (t2 - t1) / (double)job->loops;
out:
    pthread_mutex_lock(&g_lock);
    job->done = 1;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

static long parse_int(const char *text, long min, long max, const char *what) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "kvm-smoke: %s wants %ld..%ld, got '%s'\n", what, min,
                max, text);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    long loops = 1000;
    int nvcpus = 1;
    int quiet = 0;
    int opt;
    while ((opt = getopt(argc, argv, "n:c:q")) != -1) {
        switch (opt) {
        case 'n': loops = parse_int(optarg, 1, 65535, "-n"); break;
        case 'c': nvcpus = (int)parse_int(optarg, 1, kMaxVcpus, "-c"); break;
        case 'q': quiet = 1; break;
        default:
            fprintf(stderr, "usage: kvm-smoke [-n LOOPS(1..65535)] [-c VCPUS(1..%d)] [-q]\n",
                    kMaxVcpus);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kvm-smoke: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    double t0 = now_us();
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        fail("open /dev/kvm: %s", strerror(errno));
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION)
        fail("KVM_GET_API_VERSION is %d, expected %d", api, KVM_API_VERSION);
    if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0)
        fail("KVM_CAP_USER_MEMORY missing");
    int max_vcpus = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (max_vcpus > 0 && nvcpus > max_vcpus)
        fail("KVM allows at most %d vCPUs, asked for %d", max_vcpus, nvcpus);

    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        fail("KVM_CREATE_VM: %s", strerror(errno));
    // Needed by Intel hosts without unrestricted guest; harmless on AMD.
    ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL);

    uint8_t *mem = mmap(NULL, kMemSize, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        fail("mmap guest memory: %s", strerror(errno));

    // One real-mode program per vCPU (16-bit encodings), differing only in
    // the port, the value and the store address.
    const uint8_t lo = (uint8_t)(loops & 0xff), hi = (uint8_t)(loops >> 8);
    for (int i = 0; i < nvcpus; i++) {
        const uint16_t base = (uint16_t)(0x1234 + i);
        const uint16_t port = (uint16_t)(kPort + i);
        const uint16_t data = (uint16_t)(kDataAddr + 2 * i);
        const uint8_t code[] = {
            0xb8, base & 0xff, base >> 8,  // mov ax, 0x1234+i
            0x05, 0x11, 0x11,              // add ax, 0x1111 -> 0x2345+i
            0xba, port & 0xff, port >> 8,  // mov dx, kPort+i
            0xef,                          // out dx, ax     (first exit)
            0xb9, lo, hi,                  // mov cx, loops
            0xee,                          // l: out dx, al  (loops exits)
            0xe2, 0xfd,                    // loop l
            0xa3, data & 0xff, data >> 8,  // mov [kDataAddr+2i], ax
            0xf4,                          // hlt
        };
        memcpy(mem + kCodeAddr + i * kCodeStride, code, sizeof code);
    }

    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = kMemSize,
        .userspace_addr = (uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        fail("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        fail("KVM_GET_VCPU_MMAP_SIZE: %d", run_size);

    struct vcpu_job jobs[kMaxVcpus];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < nvcpus; i++) {
        struct vcpu_job *job = &jobs[i];
        job->index = i;
        job->loops = loops;
        job->run_size = (size_t)run_size;
        job->fd = ioctl(vm, KVM_CREATE_VCPU, i);
        if (job->fd < 0)
            fail("KVM_CREATE_VCPU %d: %s", i, strerror(errno));
        job->run = mmap(NULL, job->run_size, PROT_READ | PROT_WRITE,
                        MAP_SHARED, job->fd, 0);
        if (job->run == MAP_FAILED)
            fail("mmap kvm_run of vCPU %d: %s", i, strerror(errno));
        struct kvm_sregs sregs;
        if (ioctl(job->fd, KVM_GET_SREGS, &sregs) < 0)
            fail("KVM_GET_SREGS: %s", strerror(errno));
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        sregs.ds.base = 0;
        sregs.ds.selector = 0;
        if (ioctl(job->fd, KVM_SET_SREGS, &sregs) < 0)
            fail("KVM_SET_SREGS: %s", strerror(errno));
        struct kvm_regs regs;
        memset(&regs, 0, sizeof regs);
        regs.rip = kCodeAddr + (uint64_t)i * kCodeStride;
        regs.rflags = 0x2;  // bit 1 is reserved and must be set
        if (ioctl(job->fd, KVM_SET_REGS, &regs) < 0)
            fail("KVM_SET_REGS: %s", strerror(errno));
    }
    double t_setup = now_us();

    for (int i = 0; i < nvcpus; i++) {
        if (pthread_create(&jobs[i].thread, NULL, vcpu_thread, &jobs[i]) != 0)
            fail("pthread_create failed");
    }
    // Watchdog: a KVM_RUN that never returns becomes a clear failure (exit
    // ends the stuck threads with the process).
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += kTimeoutSeconds;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < nvcpus; i++) {
        while (!jobs[i].done) {
            if (pthread_cond_timedwait(&g_cond, &g_lock, &deadline) == ETIMEDOUT &&
                !jobs[i].done)
                fail("KVM_RUN of vCPU %d did not return within %d s (on a TCG "
                     "test host: is tsc_early_khz= on its kernel command line?)",
                     i, kTimeoutSeconds);
        }
    }
    pthread_mutex_unlock(&g_lock);
    double t_end = now_us();

    for (int i = 0; i < nvcpus; i++) {
        pthread_join(jobs[i].thread, NULL);
        if (jobs[i].error[0])
            fail("vCPU %d: %s", i, jobs[i].error);
        const uint16_t word = (uint16_t)(0x2345 + i);
        const uint8_t *stored = mem + kDataAddr + 2 * i;
        if (stored[0] != (word & 0xff) || stored[1] != (word >> 8))
            fail("vCPU %d: guest store not visible: %02x %02x", i, stored[0],
                 stored[1]);
    }

    if (!quiet) {
        printf("kvm-smoke: OK: %d vCPU(s) in real mode, each %ld IO exits + HLT, "
               "all values checked; setup %.0f us, run %.0f us\n",
               nvcpus, loops + 1, t_setup - t0, t_end - t_setup);
        for (int i = 0; i < nvcpus; i++)
            printf("kvm-smoke:   vCPU %d: first exit %.0f us, %.1f us per IO "
                   "exit to user space\n",
                   i, jobs[i].first_exit_us, jobs[i].per_exit_us);
    }
    for (int i = 0; i < nvcpus; i++) {
        munmap(jobs[i].run, jobs[i].run_size);
        close(jobs[i].fd);
    }
    munmap(mem, kMemSize);
    close(vm);
    close(kvm);
    return 0;
}
