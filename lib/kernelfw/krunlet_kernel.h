/* libkrunlet-kernel.so.1: the guest kernel built into a shared library
 * (lib/kernelfw/CMakeLists.txt). libkrun.so.1 links it, so the dynamic loader
 * has mapped the kernel before any krun_* call runs. */
#ifndef KRUNLET_KERNEL_H
#define KRUNLET_KERNEL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* On success (0), *data is the first byte of the ELF vmlinux (page-aligned,
 * read-only, valid for the life of the process) and *size its length.
 * -ENOENT: the library was built without a kernel (-DKRUNLET_KERNEL_IMAGE
 * unset); *data is NULL and *size 0. -EINVAL: a NULL argument. */
int krunlet_kernel_blob(const void **data, size_t *size);

#ifdef __cplusplus
}
#endif

#endif /* KRUNLET_KERNEL_H */
