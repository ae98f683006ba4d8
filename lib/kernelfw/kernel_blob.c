/* The accessor of libkrunlet-kernel.so.1: the only symbol it exports. */
#include "krunlet_kernel.h"

#include <errno.h>

/* Defined in kernel_blob.S; hidden, so reached without relocations. */
extern const unsigned char krunlet_kernel_start[] __attribute__((visibility("hidden")));
extern const unsigned char krunlet_kernel_end[] __attribute__((visibility("hidden")));

__attribute__((visibility("default"))) int krunlet_kernel_blob(const void **data, size_t *size) {
    if (data == NULL || size == NULL) return -EINVAL;
    size_t n = (size_t)(krunlet_kernel_end - krunlet_kernel_start);
    if (n == 0) {
        *data = NULL;
        *size = 0;
        return -ENOENT;
    }
    *data = krunlet_kernel_start;
    *size = n;
    return 0;
}
