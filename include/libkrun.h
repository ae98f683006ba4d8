/*
 * libkrun.h — the libkrun C ABI as implemented by krunlet.
 *
 * krunlet's library is installed as libkrun.so.1 so that crun's krun handler
 * and launchers written for libkrun can load it unchanged. Function names,
 * argument types and return conventions match libkrun: every call returns 0
 * (or a non-negative id) on success and a negative errno on failure.
 */
#ifndef KRUNLET_LIBKRUN_H
#define KRUNLET_LIBKRUN_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Log levels for krun_set_log_level. */
#define KRUN_LOG_LEVEL_OFF 0
#define KRUN_LOG_LEVEL_ERROR 1
#define KRUN_LOG_LEVEL_WARN 2
#define KRUN_LOG_LEVEL_INFO 3
#define KRUN_LOG_LEVEL_DEBUG 4
#define KRUN_LOG_LEVEL_TRACE 5

/* The virtio-fs tag of the root filesystem. */
#define KRUN_FS_ROOT_TAG "/dev/root"

/* Messages at or below `level` go to stderr (0 = off .. 5 = trace). */
int32_t krun_set_log_level(uint32_t level);

/* Create a configuration context; returns its id (>= 0). Cheap: crun calls it
 * for `exec` and `update` too. */
int32_t krun_create_ctx(void);

/* Free a context that was not started. */
int32_t krun_free_ctx(uint32_t ctx_id);

/* vCPUs (1..16) and guest RAM in MiB. */
int32_t krun_set_vm_config(uint32_t ctx_id, uint8_t num_vcpus, uint32_t ram_mib);

/* Serve `root_path` as the guest's root filesystem over virtio-fs. */
int32_t krun_set_root(uint32_t ctx_id, const char *root_path);

/* Share a host directory under a tag; the tag KRUN_FS_ROOT_TAG makes it the
 * root. shm_size (a DAX window in libkrun) is accepted and ignored: krunlet
 * has no DAX. krun_add_virtiofs3 makes the share read-only on the host side. */
int32_t krun_add_virtiofs(uint32_t ctx_id, const char *c_tag, const char *c_path);
int32_t krun_add_virtiofs2(uint32_t ctx_id, const char *c_tag, const char *c_path, uint64_t shm_size);
int32_t krun_add_virtiofs3(uint32_t ctx_id, const char *c_tag, const char *c_path, uint64_t shm_size,
                           bool read_only);

/* The workload: exec_path plus argv (NULL-terminated, without argv[0]) and
 * envp (NULL-terminated; NULL means this process's environment). */
int32_t krun_set_exec(uint32_t ctx_id, const char *exec_path, const char *const argv[],
                      const char *const envp[]);

/* Environment for the workload (NULL means this process's environment). */
int32_t krun_set_env(uint32_t ctx_id, const char *const envp[]);

/* Working directory of the workload, inside the guest. */
int32_t krun_set_workdir(uint32_t ctx_id, const char *workdir_path);

/* rlimits for the workload, each "RESOURCE=CUR:MAX" with RESOURCE the numeric
 * RLIMIT_* id; NULL-terminated. */
int32_t krun_set_rlimits(uint32_t ctx_id, const char *const rlimits[]);

/* Send the console's output to a file instead of stdout, and ignore stdin. */
int32_t krun_set_console_output(uint32_t ctx_id, const char *c_filepath);

/* Run the VMM as `uid` / `gid` from just before the guest starts: once the
 * VM is built (/dev/kvm, shares, sockets and ports opened with the caller's
 * privileges), krun_start_enter clears the supplementary groups, then calls
 * setgid, then setuid, for every thread. The virtio-fs server then creates
 * files as these ids, not as the guest's caller (docs/security.md). Failing
 * to switch (no CAP_SETUID/CAP_SETGID) makes krun_start_enter return -EPERM
 * before the guest runs. (uid_t)-1 / (gid_t)-1 are -EINVAL. */
int32_t krun_setuid(uint32_t ctx_id, uid_t uid);
int32_t krun_setgid(uint32_t ctx_id, gid_t gid);

/* The guest's connections to vsock port `port` reach the host unix socket at
 * `c_filepath`. */
int32_t krun_add_vsock_port(uint32_t ctx_id, uint32_t port, const char *c_filepath);

/* As krun_add_vsock_port; with `listen`, the VMM creates a listening socket at
 * `c_filepath` instead, and each host client reaches the guest's listener on
 * vsock port `port`. */
int32_t krun_add_vsock_port2(uint32_t ctx_id, uint32_t port, const char *c_filepath, bool listen);

/* Host TCP ports forwarded to guest ports, each "HOST:GUEST"; NULL-terminated.
 * Forwarded ports listen on 127.0.0.1 of the VMM's network namespace. Without
 * this call, every TCP port the guest listens on is mirrored on the same host
 * port instead (docs/networking.md); calling it, even with an empty list,
 * turns that off. */
int32_t krun_set_port_map(uint32_t ctx_id, const char *const port_map[]);

/* virtio-net features for krun_add_net_unixstream (libkrun's values: the
 * virtio-net feature bit numbers). krunlet offers the guest checksum offload
 * (NET_FEATURE_CSUM) when asked and none of the segmentation offloads; the
 * other bits are accepted and simply not offered. */
#define NET_FEATURE_CSUM (1 << 0)
#define NET_FEATURE_GUEST_CSUM (1 << 1)
#define NET_FEATURE_GUEST_TSO4 (1 << 7)
#define NET_FEATURE_GUEST_UFO (1 << 10)
#define NET_FEATURE_HOST_TSO4 (1 << 11)
#define NET_FEATURE_HOST_UFO (1 << 14)
#define COMPAT_NET_FEATURES                                                                         \
    (NET_FEATURE_CSUM | NET_FEATURE_GUEST_CSUM | NET_FEATURE_GUEST_TSO4 | NET_FEATURE_GUEST_UFO | \
     NET_FEATURE_HOST_TSO4 | NET_FEATURE_HOST_UFO)
/* Flags for krun_add_net_unixstream (libkrun's values). Both are refused with
 * -EINVAL: NET_FLAG_VFKIT is the datagram socket's handshake, and krunlet's
 * init has no DHCP client (NET_FLAG_DHCP_CLIENT); crun retries without it. */
#define NET_FLAG_VFKIT (1 << 0)
#define NET_FLAG_DHCP_CLIENT (1 << 1)

/* The guest's network device exchanges Ethernet frames with a stream unix
 * socket in passt's format (each frame preceded by its 4-byte big-endian
 * length): either the socket at `c_path`, connected when the VM starts, or
 * the connected socket `fd` (c_path NULL; the context keeps a copy). `c_mac`
 * is the guest's MAC address (6 bytes; NULL for 52:54:00:12:34:56). This
 * replaces the built-in user-mode network, and no guest ports are mirrored:
 * passt forwards ports itself. init gives eth0 10.0.2.15/24, gateway
 * 10.0.2.2, DNS 10.0.2.3; start passt to match (docs/networking.md).
 * Returns 0, -EINVAL (bad arguments, features or flags), -EEXIST (a second
 * network device), -ENAMETOOLONG, or the errno of a bad fd. */
int32_t krun_add_net_unixstream(uint32_t ctx_id, const char *c_path, int fd, uint8_t *const c_mac,
                                uint32_t features, uint32_t flags);

/* krunlet extension: the guest's network. "slirp" (the default: virtio-net
 * with a user-mode stack, guest 10.0.2.15/24, gateway and host 10.0.2.2, DNS
 * 10.0.2.3) or "none" (loopback only). */
int32_t krunlet_set_net(uint32_t ctx_id, const char *mode);

/* Maximum vCPUs for krun_set_vm_config. */
int32_t krun_get_max_vcpus(void);

/* Log output, libkrun style. `target_fd` must be KRUN_LOG_TARGET_DEFAULT
 * (stderr): krunlet logs only there, so another fd is -ENOTSUP. `level` is as
 * for krun_set_log_level. krunlet never colors its messages and reads no
 * environment variable for its log level, so every `style` and
 * KRUN_LOG_OPTION_NO_ENV already hold; unknown style or option values are
 * -EINVAL. */
#define KRUN_LOG_TARGET_DEFAULT -1
#define KRUN_LOG_STYLE_AUTO 0
#define KRUN_LOG_STYLE_ALWAYS 1
#define KRUN_LOG_STYLE_NEVER 2
#define KRUN_LOG_OPTION_NO_ENV 1
int32_t krun_init_log(int target_fd, uint32_t level, uint32_t style, uint32_t options);

/* Build-time features (libkrun's numbering). 1 = this library has it, 0 = it
 * does not, -EINVAL = an unknown constant. krunlet has virtio-net
 * (KRUN_FEATURE_NET) and an embedded init (KRUN_FEATURE_INIT_BLOB); it has no
 * virtio-blk, virtio-gpu, input devices or TEE support. */
#define KRUN_FEATURE_NET 0
#define KRUN_FEATURE_BLK 1
#define KRUN_FEATURE_GPU 2
#define KRUN_FEATURE_INPUT 4
#define KRUN_FEATURE_TEE 6
#define KRUN_FEATURE_AMD_SEV 7
#define KRUN_FEATURE_INTEL_TDX 8
#define KRUN_FEATURE_AWS_NITRO 9
#define KRUN_FEATURE_VIRGL_RESOURCE_MAP2 10
#define KRUN_FEATURE_INIT_BLOB 11
int32_t krun_has_feature(uint64_t feature);

/* Nested virtualization: krunlet does not offer the guest VMX/SVM, so
 * krun_check_nested_virt answers 0 (not supported; 1 would be supported) and
 * krun_set_nested_virt(ctx, true) is -ENOTSUP (false is what krunlet does, 0). */
int32_t krun_check_nested_virt(void);
int32_t krun_set_nested_virt(uint32_t ctx_id, bool enabled);

/* The guest kernel. krunlet boots an uncompressed x86-64 ELF vmlinux
 * (KRUN_KERNEL_FORMAT_ELF) straight from a virtio-fs root: other formats and
 * an initramfs are -ENOTSUP, with a logged reason. The file is opened and
 * mapped here (a bad path fails now, with its errno), and replaces the kernel
 * built into libkrunlet-kernel.so.1 and $KRUNLET_KERNEL for this context.
 * `cmdline` (NULL for none) is appended to krunlet's own command line, which
 * carries the devices and init: later words win, so it can override options
 * but not remove krunlet's. */
#define KRUN_KERNEL_FORMAT_RAW 0
#define KRUN_KERNEL_FORMAT_ELF 1
#define KRUN_KERNEL_FORMAT_PE_GZ 2
#define KRUN_KERNEL_FORMAT_IMAGE_BZ2 3
#define KRUN_KERNEL_FORMAT_IMAGE_GZ 4
#define KRUN_KERNEL_FORMAT_IMAGE_ZSTD 5
int32_t krun_set_kernel(uint32_t ctx_id, const char *kernel_path, uint32_t kernel_format, const char *initramfs,
                        const char *cmdline);

/* Not supported by krunlet. Each returns -ENOTSUP (-ENOENT for an unknown
 * context) and logs one line naming what is missing. Asking for what krunlet
 * already does (a feature turned off, an empty list) returns 0. */
/* virtio-gpu (crun calls it only when /dev/dri and virgl_render_server exist). */
#define VIRGLRENDERER_USE_EGL (1 << 0)
#define VIRGLRENDERER_THREAD_SYNC (1 << 1)
#define VIRGLRENDERER_USE_GLX (1 << 2)
#define VIRGLRENDERER_USE_SURFACELESS (1 << 3)
#define VIRGLRENDERER_USE_GLES (1 << 4)
#define VIRGLRENDERER_USE_EXTERNAL_BLOB (1 << 5)
#define VIRGLRENDERER_VENUS (1 << 6)
#define VIRGLRENDERER_NO_VIRGL (1 << 7)
#define VIRGLRENDERER_USE_ASYNC_FENCE_CB (1 << 8)
#define VIRGLRENDERER_RENDER_SERVER (1 << 9)
#define VIRGLRENDERER_DRM (1 << 10)
int32_t krun_set_gpu_options(uint32_t ctx_id, uint32_t virgl_flags);
int32_t krun_set_gpu_options2(uint32_t ctx_id, uint32_t virgl_flags, uint64_t shm_size);
/* virtio-blk disks (the root is always virtio-fs in krunlet). */
int32_t krun_set_root_disk(uint32_t ctx_id, const char *disk_path);
int32_t krun_set_data_disk(uint32_t ctx_id, const char *disk_path);
/* TEEs (libkrun-sev's configuration file). */
int32_t krun_set_tee_config_file(uint32_t ctx_id, const char *filepath);
/* krunlet's interrupt controller is KVM's in-kernel one, never split:
 * enable=false is 0, enable=true -ENOTSUP. */
int32_t krun_split_irqchip(uint32_t ctx_id, bool enable);
/* krunlet builds no SMBIOS tables: a non-empty list is -ENOTSUP. */
int32_t krun_set_smbios_oem_strings(uint32_t ctx_id, const char *const oem_strings[]);
/* virtio-snd: enable=false is 0, enable=true -ENOTSUP. */
int32_t krun_set_snd_device(uint32_t ctx_id, bool enable);
/* An eventfd asking the guest to shut down: not implemented (the VMM forwards
 * SIGTERM/SIGINT to the workload instead). */
int32_t krun_get_shutdown_eventfd(uint32_t ctx_id);

/* Boot the microVM and run the workload. On success this never returns: the
 * process exits with the workload's status (128+N when killed by signal N;
 * 125 when krunlet or init failed, 126 when the command cannot be executed,
 * 127 when it is not found, 124 when the guest kernel crashed). It returns a
 * negative errno only when the configuration is unusable. */
int32_t krun_start_enter(uint32_t ctx_id);

/* krunlet extension: print one line to stderr when the VM ends,
 * "boot-trace: setup_ms=... kernel_ms=... init_ms=... workload_ms=...
 * init_to_exit_ms=... total_ms=..." (kernel: first KVM_RUN to init's start;
 * init: to the workload's fork; workload: to the end of the VM).
 * Setting KRUNLET_BOOT_TRACE=1 in the environment does the same. */
int32_t krunlet_set_boot_trace(uint32_t ctx_id, bool enabled);

/* krunlet extension: words appended to the guest kernel's command line
 * (later words win, e.g. a second init=). */
int32_t krunlet_set_kernel_cmdline(uint32_t ctx_id, const char *extra);

/* krunlet extension: the guest's init mounts the virtio-fs share `tag` (added
 * with krun_add_virtiofs*, not the root) on `guest_path` before the workload
 * starts, creating the directory when it is missing; `read_only` mounts it
 * read-only in the guest (krun_add_virtiofs3's read_only is what the host
 * enforces). The tag is 1..36 printable ASCII characters without spaces; the
 * path is absolute, not "/", without "." or ".." components. At most 64
 * mounts. A share or mount init cannot set up ends the workload with 125 and
 * a message naming the tag and path. */
int32_t krunlet_add_virtiofs_mount(uint32_t ctx_id, const char *tag, const char *guest_path,
                                   bool read_only);

/* krunlet extension: how much the guest may cache of every virtio-fs share.
 * `policy` is "never" (every access reaches the host: host-side changes are
 * seen at once), "auto" (the default: close-to-open, names and attributes
 * trusted for 1 s) or "always" (the guest keeps everything: only for shares
 * nothing else changes). `entry_timeout` and `attr_timeout` are seconds
 * ("0", "1", "0.25"; at most 31536000) and override the policy's. NULL leaves
 * a knob to the environment, read at krun_create_ctx and again (winning) at
 * krun_start_enter:
 *   KRUNLET_FS_CACHE=never|auto|always
 *   KRUNLET_FS_ENTRY_TIMEOUT=SECONDS
 *   KRUNLET_FS_ATTR_TIMEOUT=SECONDS
 * A bad value here is -EINVAL at once; a bad variable makes krun_start_enter
 * return -EINVAL with a message naming it. */
int32_t krunlet_set_fs_cache(uint32_t ctx_id, const char *policy, const char *entry_timeout,
                             const char *attr_timeout);

#ifdef __cplusplus
}
#endif

#endif /* KRUNLET_LIBKRUN_H */
