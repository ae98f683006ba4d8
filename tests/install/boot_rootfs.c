/* boot_rootfs ROOTFS — a launcher written against the installed libkrun.
 * Built by install_test.sh with `cc $(pkg-config --cflags --libs libkrun)`,
 * so it proves the installed header, libkrun.pc and libkrun.so.1 (with the
 * guest kernel in libkrunlet-kernel.so.1 beside it) are enough on their own.
 * It makes crun's older call sequence (DESIGN.md §3): log level, context, VM
 * size, root, working directory, workload, start. krun_start_enter does not
 * return on success: the process exits with the workload's status. */
#include <libkrun.h>
#include <stdio.h>
#include <string.h>

static int check(const char *what, int32_t rc) {
    if (rc < 0) fprintf(stderr, "boot_rootfs: %s failed: %s\n", what, strerror(-rc));
    return rc < 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: boot_rootfs ROOTFS\n");
        return 2;
    }
    const char *const args[] = {"-c", "echo hello from the installed libkrun; exit 7", NULL};
    const char *const env[] = {"PATH=/bin:/sbin", NULL};
    if (check("krun_set_log_level", krun_set_log_level(1))) return 1;
    int32_t ctx = krun_create_ctx();
    if (check("krun_create_ctx", ctx)) return 1;
    if (check("krun_set_vm_config", krun_set_vm_config((uint32_t)ctx, 1, 256))) return 1;
    if (check("krun_set_root", krun_set_root((uint32_t)ctx, argv[1]))) return 1;
    if (check("krun_set_workdir", krun_set_workdir((uint32_t)ctx, "/"))) return 1;
    if (check("krun_set_exec", krun_set_exec((uint32_t)ctx, "/bin/sh", args, env))) return 1;
    int32_t rc = krun_start_enter((uint32_t)ctx);
    check("krun_start_enter", rc);
    return 1;
}
